"""Dates in a note's text: find them, read them, move them, write them as they were written.

A date entity is moved by the document's one offset (so intervals are kept), in the format
it was written in: "03/04/2019", "3 de abril de 2019", "abril 2019", "2019", "30/1 2013",
"3. März", "7/19", "March 3, 2019". Month names come from the language data
(``clinical_deid/lang``) and, for any pipeline language, from Babel's CLDR data (full and
abbreviated, format and stand-alone forms); a moved date keeps the original's separators,
its padding per field and its month name's language, width and case.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Dict, List, Optional, Sequence, Tuple

from babel import Locale, UnknownLocaleError
from babel.dates import get_month_names

from .folding import fold, match_case
from .lang import LANGUAGES, load as load_language

# Babel's (CLDR) month-name forms: (width, context); a word found in one form is rendered
# in the same form ("März" -> "April", "Jan." -> "Feb.", Finnish "tammikuuta" -> "helmikuuta").
_CLDR_FORMS = (("wide", "format"), ("wide", "stand-alone"), ("abbreviated", "format"),
               ("abbreviated", "stand-alone"))
MonthNames = Tuple[str, ...]  # the twelve names of one form, January first, without a final "."


def _cldr_month_names(lang: str) -> List[MonthNames]:
    """The month names of `lang` in each CLDR form; [] for a language Babel does not know."""
    try:
        locale = Locale.parse(lang)
    except (UnknownLocaleError, ValueError, TypeError):
        return []
    forms = []
    for width, context in _CLDR_FORMS:
        names = get_month_names(width, context, locale=locale)
        forms.append(tuple(names[i].rstrip(".") for i in range(1, 13)))
    return forms


def _month_forms(lang: str) -> List[MonthNames]:
    """The month-name forms of one language: its JSON lists first (full, abbreviated), then
    CLDR's."""
    data = load_language(lang)
    forms = [tuple(data[key]) for key in ("months", "month_abbreviations") if key in data]
    return forms + _cldr_month_names(lang)


class DateGrammar:
    """The month words and date patterns of a pipeline language: the month names of that
    language (JSON data and Babel's CLDR names) and of the languages with data (LANGUAGES)."""

    def __init__(self, lang: Optional[str]) -> None:
        self.lang = lang
        # folded month word -> (month, the twelve names of its form)
        self.words: Dict[str, Tuple[int, MonthNames]] = {}
        order = ([lang] if lang else []) + [code for code in LANGUAGES if code != lang]
        for code in order:
            data = load_language(code)
            forms = _month_forms(code)
            for word, (month, abbreviation) in data.get("month_variants", {}).items():
                if forms:
                    self.words.setdefault(fold(word), (month, forms[1 if abbreviation and len(forms) > 1 else 0]))
            for names in forms:
                for i, word in enumerate(names):
                    if word and not any(c.isdigit() for c in word):
                        self.words.setdefault(fold(word), (i + 1, names))
        # the patterns match the words as written and folded (case-insensitively)
        written = {fold(w) for w in self.words}
        written |= {w for names in (n for _, n in self.words.values()) for w in names}
        self.patterns = _date_patterns("|".join(re.escape(w) for w in sorted(written, key=len, reverse=True)))

    def month(self, word: str) -> Optional[Tuple[int, MonthNames]]:
        """word (str): A month word as matched. RETURNS: (month, names of its form), or None."""
        return self.words.get(fold(word).rstrip("."))


_NOT_LETTER_AHEAD = r"(?![^\W\d_])"


def _date_patterns(mon: str) -> List[Tuple["re.Pattern[str]", bool, bool]]:
    """The date patterns with `mon` as the month-word alternation, in the order they are
    tried (a later pattern only takes text no earlier match took): (pattern, needs a digit,
    needs a letter)."""
    y4_or_2 = r"(?P<y>\d{4}|\d{2})(?!\d)"
    return [
        (re.compile(r"(?<!\d)(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?!\d)"), True, False),
        (re.compile(r"(?<!\d)(?P<d>\d{1,2})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)" + y4_or_2), True, False),
        # month first ("07/19/2019"): only where the day-first reading is no date
        (re.compile(r"(?<!\d)(?P<m>\d{1,2})(?P<s>[-/.])(?P<d>\d{1,2})(?P=s)" + y4_or_2), True, False),
        # Swedish "30/1 2013", "3/5-18"
        (re.compile(r"(?<!\d)(?P<d>\d{1,2})/(?P<m>\d{1,2})(?: |-)" + y4_or_2), True, False),
        (re.compile(
            r"(?<!\d)(?P<d>\d{1,2})(?::e|:a|º)?(?:\s+de\s+|\s+|[-/.]\s?)(?P<mon>" + mon + r")"
            + _NOT_LETTER_AHEAD + r"\.?(?:(?:\s+del?\s+|,?\s+|[-/.])(?P<y>\d{4})(?!\d))?",
            re.IGNORECASE,
        ), True, True),
        # "March 3, 2019", "Mar. 3rd 2019"
        (re.compile(
            r"(?<![^\W\d_])(?P<mon>" + mon + r")" + _NOT_LETTER_AHEAD
            + r"\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})(?!\d)",
            re.IGNORECASE,
        ), True, True),
        (re.compile(
            r"(?<![^\W\d_])(?P<mon>" + mon + r")" + _NOT_LETTER_AHEAD
            + r"\.?(?:\s+del?\s+|,?\s+|[-/])(?P<y>\d{4})(?!\d)",
            re.IGNORECASE,
        ), True, True),
        (re.compile(r"(?<![\d/.-])(?P<m>\d{1,2})(?P<s>[-/.])(?P<y>\d{4})(?!\d)"), True, False),
        (re.compile(r"(?<![\d/.-])(?P<d>\d{1,2})(?P<s>[/.])(?P<m>\d{1,2})(?![\d/]|[.-]\d)"), True, False),
        # month and two-digit year ("7/19"): only where the day/month reading is no date
        (re.compile(r"(?<![\d/.-])(?P<m>\d{1,2})(?P<s>/)(?P<y>\d{2})(?![\d/]|[.-]\d)"), True, False),
        (re.compile(r"(?<!\d)(?P<y>(?:1[89]|20)\d{2})(?!\d)"), True, False),
        (re.compile(r"(?<![^\W\d_])(?P<mon>" + mon + r")" + _NOT_LETTER_AHEAD, re.IGNORECASE), False, True),
    ]


_GRAMMARS: Dict[Optional[str], DateGrammar] = {}
_PATTERN_GRAMMAR: Dict["re.Pattern[str]", DateGrammar] = {}


def grammar(lang: Optional[str] = None) -> DateGrammar:
    """The date grammar of a pipeline language, built once.

    lang (Optional[str]): The pipeline's language ("de"); None: the languages with data only.
    RETURNS (DateGrammar): Its month words and patterns.
    """
    if lang not in _GRAMMARS:
        built = DateGrammar(lang)
        _GRAMMARS[lang] = built
        _PATTERN_GRAMMAR.update({pattern: built for pattern, _, _ in built.patterns})
    return _GRAMMARS[lang]


# A numeric date as the rules find it in a note ("01.03.2019", "1/3/19", "2019-03-01").
NUMERIC_DATE = re.compile(
    r"(?<![\w/.-])(?:\d{1,2}([/.-])\d{1,2}\1(?:\d{4}|\d{2})|(?:19|20)\d{2}-\d{1,2}-\d{1,2})(?![\w/-]|\.\d)"
)


def is_numeric_date(match: str) -> bool:
    """match (str): A match of NUMERIC_DATE. RETURNS (bool): Whether it is a real date."""
    parts = re.split(r"[/.-]", match)
    if len(parts[0]) == 4:
        y, m, d = parts
    else:
        d, m, y = parts
    year = int(y) + (2000 if len(y) == 2 else 0)
    try:
        date(year, int(m), int(d))
    except ValueError:
        return False
    return True


def find_written_dates(text: str, lang: Optional[str] = None) -> List[Tuple[int, int]]:
    """(start, end) of the dates of a note written with a month name and a year ("3. März
    2019", "12 de marzo de 2019", "March 3, 2019", "mars 2019"), for the DATE rule: a month
    word alone ("mar", "may") or without a year is too often no date.

    text (str): A note. lang (Optional[str]): The pipeline's language (its CLDR month names).
    RETURNS (List[Tuple[int, int]]): The dates' offsets, sorted, without overlaps.
    """
    if not any(c.isdigit() for c in text):
        return []
    found: List[Tuple[int, int]] = []
    taken: List[Tuple[int, int, bool]] = []
    for pattern, _, needs_alpha in grammar(lang).patterns:
        if not needs_alpha or "P<y>" not in pattern.pattern:
            continue
        for m in pattern.finditer(text):
            if m.group("y") and _free(taken, m.start(), m.end()) and date_fields(m) is not None:
                taken.append((m.start(), m.end(), True))
                found.append((m.start(), m.end()))
    return sorted(found)


def _full_year(text: str) -> int:
    year = int(text)
    if len(text) == 2:  # two-digit years: 00-30 are 2000s, the rest 1900s
        year += 2000 if year <= 30 else 1900
    return year


def find_dates(text: str, lang: Optional[str] = None) -> List[Tuple[int, int, re.Match]]:
    """Parsable dates in `text`: (start, end, match), sorted; invalid dates are left out.

    text (str): A date entity's text.
    lang (Optional[str]): The pipeline's language, whose month names (CLDR) are read too.
    RETURNS (List[Tuple[int, int, re.Match]]): (start, end, match) of each date.
    """
    found: List[Tuple[int, int, re.Match]] = []
    taken: List[Tuple[int, int, bool]] = []  # (start, end, is a date)
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    covered = 0
    for pattern, needs_digit, needs_alpha in grammar(lang).patterns:
        if (needs_digit and not has_digit) or (needs_alpha and not has_alpha):
            continue
        for m in pattern.finditer(text):
            if not _free(taken, m.start(), m.end()):
                continue
            is_date = date_fields(m) is not None
            taken.append((m.start(), m.end(), is_date))
            if is_date:
                found.append((m.start(), m.end(), m))
                covered += m.end() - m.start()
        if covered == len(text):  # the usual case: the entity is one date
            break
    return sorted(found, key=lambda item: item[0])


def _free(taken: Sequence[Tuple[int, int, bool]], start: int, end: int) -> bool:
    """Whether a match may take start:end: it overlaps no date taken, and every invalid
    match it overlaps lies inside it (another reading of the same text: "07/19/2019" month
    first, "7/19" month and year); an invalid date ("31/02/2019") is no year either."""
    return all(
        e <= start or end <= s or (not is_date and start <= s and e <= end)
        for s, e, is_date in taken
    )


def date_fields(m: re.Match) -> Optional[Tuple[Optional[int], Optional[int], Optional[int]]]:
    """(day, month, year) of a match of find_dates, None where absent; None if no real date.

    m (re.Match): A match of find_dates.
    RETURNS (Optional[Tuple]): (day, month, year), or None if it is no real date.
    """
    groups = m.groupdict()
    day = int(groups["d"]) if groups.get("d") else None
    year = _full_year(groups["y"]) if groups.get("y") else None
    if groups.get("mon"):
        info = _month_info(m)
        if info is None:
            return None
        month = info[0]
    else:
        month = int(groups["m"]) if groups.get("m") else None
    try:  # 0 is no day, month or year ("00/00/0000"), and the year must fit a date
        date(2000 if year is None else year, 1 if month is None else month, 1 if day is None else day)
    except ValueError:
        return None
    return day, month, year


def _month_info(m: re.Match) -> Optional[Tuple[int, MonthNames]]:
    """(month, names of its form) of the month word of a match: the patterns match
    case-insensitively, so "ſeptiembre" and "ABRİL" come too; looked up folded, in the
    grammar whose pattern matched."""
    return _PATTERN_GRAMMAR[m.re].month(m.group("mon"))


def _date_ref(m: re.Match) -> Tuple[date, Optional[timedelta]]:
    """The date of a match (missing parts: the middle of the period) and its granularity
    step (None for a full date)."""
    day, month, year = date_fields(m)  # type: ignore[misc]
    # Missing parts are filled with the middle of the period, so that "2019" or "marzo de
    # 2019" move with the same offset as the full dates of the document.
    if day is None and month is None:
        return date(year, 7, 1), timedelta(days=366)  # type: ignore[arg-type]
    ref = date(year or 2000, month or 7, day or 15)
    if year is None or day is None:
        return ref, timedelta(days=31) if day is None else timedelta(days=1)
    return ref, None


def shifted_or_none(m: re.Match, shift: timedelta) -> Optional[str]:
    """shift_match, or None where the moved date leaves the calendar (31/12/9999 moved
    forward): that date is redacted (see DeidTransform), the others still move.

    m (re.Match): A match of find_dates. shift (timedelta): The document's offset.
    RETURNS (Optional[str]): The moved date as written, or None.
    """
    try:
        return shift_match(m, shift)
    except (OverflowError, ValueError):
        return None


def shift_match(m: re.Match, shift: timedelta) -> str:
    """The date of `m` moved by `shift`, written the way the original was written: the same
    separators, the same padding per field, a month name in the same language, width and
    case ("3. März 2019" -> "17. April 2019", "07/19" -> "09/19").

    m (re.Match): A match of find_dates. shift (timedelta): The document's offset.
    RETURNS (str): The moved date; OverflowError or ValueError if it leaves the calendar.
    """
    ref, step = _date_ref(m)
    text = _render_date(m, ref + shift)
    if text == m.group() and step is not None:
        # "2019" moved by 100 days is still "2019": one more period in the same direction,
        # so that no date is left as it was.
        text = _render_date(m, ref + shift + (step if shift.days >= 0 else -step))
    return text


def _number(value: int, original: str, padded: bool) -> str:
    """A day or month written as the original: one digit stays unpadded, "03" stays
    padded; a two-digit "12" is padded unless the date writes its other field unpadded."""
    return f"{value:02d}" if len(original) == 2 and (padded or original.startswith("0")) else str(value)


def _render_date(m: re.Match, new: date) -> str:
    out = []
    pos = m.start()
    groups = m.groupdict()
    # "12.10.2019" is dd.mm.yyyy, "12.3.2019" d.m.yyyy; "12 de marzo" says nothing (unpadded).
    numbers = [groups[g] for g in ("d", "m") if groups.get(g) is not None]
    padded = len(numbers) == 2 and all(len(n) == 2 for n in numbers)
    # Rebuild by replacing each present group in place, keeping the separators.
    spans = sorted((m.start(g), m.end(g), g) for g in ("d", "m", "y", "mon") if groups.get(g) is not None)
    for start, end, group in spans:
        out.append(m.string[pos:start])
        original = m.group(group)
        if group == "d":
            value = _number(new.day, original, padded)
        elif group == "m":
            value = _number(new.month, original, padded)
        elif group == "y":
            value = f"{new.year % 100:02d}" if len(original) == 2 else str(new.year)
        else:
            _, names = _month_info(m)  # type: ignore[misc]
            value = _in_case_of(original, names[new.month - 1])
        out.append(value)
        pos = end
    out.append(m.string[pos : m.end()])
    return "".join(out)


def _in_case_of(original: str, word: str) -> str:
    """`word` in the case of `original` (match_case), capitalised after a capitalised one
    ("March" -> "April" where the names are stored in lower case)."""
    word = match_case(original, word)
    return word[:1].upper() + word[1:] if original[:1].isupper() and word[:1].islower() else word
