"""Dates in a note's text: find them, read them, move them, write them as they were written.

A date entity is moved by the document's one offset (so intervals are kept), in the format
it was written in: "03/04/2019", "3 de abril de 2019", "abril 2019", "2019", "30/1 2013".
Month names come from the language data (``clinical_deid/lang``).
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Dict, List, Optional, Tuple

from .lang import LANGUAGES, load as load_language
from .folding import fold, match_case

# Month names per language: (full names, abbreviations).
MONTHS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    code: (tuple(load_language(code)["months"]), tuple(load_language(code)["month_abbreviations"]))
    for code in LANGUAGES if "months" in load_language(code)
}
# month word -> (month, is_abbreviation); the first language listed wins for shared words.
_MONTH_WORDS: Dict[str, Tuple[int, bool]] = {
    word: (month, abbreviation) for code in LANGUAGES
    for word, (month, abbreviation) in load_language(code).get("month_variants", {}).items()
}
for _full, _abbr in MONTHS.values():
    for _i, _w in enumerate(_full):
        _MONTH_WORDS.setdefault(_w, (_i + 1, False))
    for _i, _w in enumerate(_abbr):
        _MONTH_WORDS.setdefault(_w, (_i + 1, True))
_MON = "|".join(sorted(_MONTH_WORDS, key=len, reverse=True))
_NOT_LETTER_AHEAD = r"(?![^\W\d_])"
# Tried in this order; a later pattern only takes text that no earlier match took.
_DATE_PATTERNS = [  # (pattern, needs a digit, needs a letter)
    (re.compile(r"(?<!\d)(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?!\d)"), True, False),
    (re.compile(r"(?<!\d)(?P<d>\d{1,2})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})(?!\d)"), True, False),
    # Swedish "30/1 2013", "3/5-18"
    (re.compile(r"(?<!\d)(?P<d>\d{1,2})/(?P<m>\d{1,2})(?: |-)(?P<y>\d{4}|\d{2})(?!\d)"), True, False),
    (re.compile(
        r"(?<!\d)(?P<d>\d{1,2})(?::e|:a|º)?(?:\s+de\s+|\s+|[-/.]\s?)(?P<mon>" + _MON + r")"
        + _NOT_LETTER_AHEAD + r"\.?(?:(?:\s+del?\s+|,?\s+|[-/.])(?P<y>\d{4})(?!\d))?",
        re.IGNORECASE,
    ), True, True),
    (re.compile(
        r"(?<![^\W\d_])(?P<mon>" + _MON + r")" + _NOT_LETTER_AHEAD
        + r"\.?(?:\s+del?\s+|,?\s+|[-/])(?P<y>\d{4})(?!\d)",
        re.IGNORECASE,
    ), True, True),
    (re.compile(r"(?<![\d/.-])(?P<m>\d{1,2})(?P<s>[-/.])(?P<y>\d{4})(?!\d)"), True, False),
    (re.compile(r"(?<![\d/.-])(?P<d>\d{1,2})(?P<s>[/.])(?P<m>\d{1,2})(?![\d/]|[.-]\d)"), True, False),
    (re.compile(r"(?<!\d)(?P<y>(?:1[89]|20)\d{2})(?!\d)"), True, False),
    (re.compile(r"(?<![^\W\d_])(?P<mon>" + _MON + r")" + _NOT_LETTER_AHEAD, re.IGNORECASE), False, True),
]


def _full_year(text: str) -> int:
    year = int(text)
    if len(text) == 2:  # two-digit years: 00-30 are 2000s, the rest 1900s
        year += 2000 if year <= 30 else 1900
    return year


def find_dates(text: str) -> List[Tuple[int, int, re.Match]]:
    """Parsable dates in `text`: (start, end, match), sorted; invalid dates are left out.

    text (str): A date entity's text.
    RETURNS (List[Tuple[int, int, re.Match]]): (start, end, match) of each date.
    """
    found: List[Tuple[int, int, re.Match]] = []
    taken: List[Tuple[int, int]] = []
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    covered = 0
    for pattern, needs_digit, needs_alpha in _DATE_PATTERNS:
        if (needs_digit and not has_digit) or (needs_alpha and not has_alpha):
            continue
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))  # an invalid date ("31/02/2019") is no year either
            if date_fields(m) is not None:
                found.append((m.start(), m.end(), m))
                covered += m.end() - m.start()
        if covered == len(text):  # the usual case: the entity is one date
            break
    return sorted(found, key=lambda item: item[0])


def date_fields(m: re.Match) -> Optional[Tuple[Optional[int], Optional[int], Optional[int]]]:
    """(day, month, year) of a match of find_dates, None where absent; None if no real date.

    m (re.Match): A match of find_dates.
    RETURNS (Optional[Tuple]): (day, month, year), or None if it is no real date.
    """
    groups = m.groupdict()
    day = int(groups["d"]) if groups.get("d") else None
    year = _full_year(groups["y"]) if groups.get("y") else None
    if groups.get("mon"):
        info = _month_info(groups["mon"])
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


def _month_info(word: str) -> Optional[Tuple[int, bool]]:
    """(month, is_abbreviation) of a month word as the patterns matched it: they match
    case-insensitively, so "ſeptiembre" and "ABRİL" come too; looked up folded."""
    return _MONTH_WORDS.get(fold(word))


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


def shifted_or_none(m: re.Match, shift: timedelta, lang: str) -> Optional[str]:
    """shift_match, or None where the moved date leaves the calendar (31/12/9999 moved
    forward): that date is redacted (see DeidTransform), the others still move.

    m (re.Match): A match of find_dates. shift (timedelta): The document's offset.
    lang (str): The language the month names are written in.
    RETURNS (Optional[str]): The moved date as written, or None.
    """
    try:
        return shift_match(m, shift, lang)
    except (OverflowError, ValueError):
        return None


def shift_match(m: re.Match, shift: timedelta, lang: str) -> str:
    """The date of `m` moved by `shift`, written the way the original was written.

    m (re.Match): A match of find_dates. shift (timedelta): The document's offset.
    lang (str): The language the month names are written in.
    RETURNS (str): The moved date; OverflowError or ValueError if it leaves the calendar.
    """
    ref, step = _date_ref(m)
    text = _render_date(m, ref + shift, lang)
    if text == m.group() and step is not None:
        # "2019" moved by 100 days is still "2019": one more period in the same direction,
        # so that no date is left as it was.
        text = _render_date(m, ref + shift + (step if shift.days >= 0 else -step), lang)
    return text


def _render_date(m: re.Match, new: date, lang: str) -> str:
    out = []
    pos = m.start()
    # Rebuild by replacing each present group in place, keeping the separators.
    spans = sorted(
        (m.start(g), m.end(g), g) for g in ("d", "m", "y", "mon") if m.groupdict().get(g) is not None
    )
    for start, end, group in spans:
        out.append(m.string[pos:start])
        original = m.group(group)
        if group == "d":
            value = f"{new.day:0{len(original)}d}" if original.startswith("0") else str(new.day)
        elif group == "m":
            value = f"{new.month:0{len(original)}d}" if original.startswith("0") else str(new.month)
        elif group == "y":
            value = f"{new.year % 100:02d}" if len(original) == 2 else str(new.year)
        else:
            value = _month_word(new.month, original, lang)
        out.append(value)
        pos = end
    out.append(m.string[pos : m.end()])
    return "".join(out)


def _month_word(month: int, original: str, lang: str) -> str:
    full, abbr = MONTHS.get(lang, MONTHS["en"])
    info = _month_info(original)
    word = (abbr if info is not None and info[1] else full)[month - 1]
    return match_case(original, word)
