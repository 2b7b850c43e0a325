"""The de-identification component: turns `doc.ents` into a de-identified text.

Registered factory ``deid_transform``; add it after ``ner`` (and after ``deid_rules``)::

    nlp.add_pipe("deid_rules", after="ner")
    nlp.add_pipe("deid_transform", last=True, config={"mode": "pseudonymize", "seed": 0})
    doc = nlp(text)
    doc._.deidentified   # str
    doc._.deid_spans     # [{"start", "end", "label", "kind", "source", "out_start", "out_end", "replacement"}]

Modes: ``redact`` ("[LABEL]"), ``mask`` (each non-space character becomes ``mask_char``, so
offsets do not move) and ``pseudonymize``: a realistic surrogate of the same kind, drawn
from Faker's locale data (es_ES, sv_SE, ...). Surrogates are consistent within a document
(the same string, and the same name part whatever its case, gets the same surrogate), dates
move by one offset per document (intervals are kept), ages by one small delta, and IDs come
out in a valid format (DNI/NIE check letter, personnummer Luhn digit).

Keys: without one, the draws of a document are seeded from ``seed`` and a hash of its text,
so anyone holding the output and a candidate patient can recompute the surrogates and test
the guess (``keyed`` is False; ``clinical_deid.deidentify`` refuses). With ``set_key(key)`` (see
``load_key``: a key file or ``$DEID_SURROGATE_KEY``) every draw comes from
HMAC-SHA256(key, kind + folded original): the same real value gets the same surrogate in
every note of the run (a name word by word, so "García" alone and in "Ana García" agree),
and the date shift and age delta are drawn per ``doc._.deid_group`` (a patient id; per note
when None). The key lives in memory only (not in the config, to_disk, meta or repr). Either
way the output is the same with any ``n_process`` and any batch size.

Other mentions of a found string (4+ characters), and the distinctive words of found names
and institutions, are replaced too, in any case or accent form (``fold``: Unicode case
folding, marks dropped; "GARCIA", "garcía", NFD "García"), by characters. A value a surrogate
cannot handle (a date that leaves the calendar, an age 0, a surrogate that would hold an
original of the note) is redacted instead, never failing the note: its span record says
``"fallback": "redact"`` and ``"fallback_reason"`` (the exception's type).

Package-safe: imports only the standard library, spaCy and Faker (``spacy package --code``
copies this file into the wheel on its own).
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import hmac
import itertools
import os
import random
import re
import unicodedata
from datetime import date, timedelta
from pathlib import Path
from typing import AbstractSet, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from faker import Faker
from spacy.language import Language
from spacy.tokens import Doc, Span

MODES = ("redact", "mask", "pseudonymize")
# What a label turns into under `pseudonymize`. "redact": no surrogate of that kind (under
# pseudonymize: `no_surrogate`, redacted by default; masked under mask); "relative": a name
# if it is one, else (a kinship word: "madre", "hermanos") as "redact"; "mask" and "keep"
# apply in every mode ("keep": not PHI, left alone).
KINDS = (
    "name", "first_name", "last_name", "relative", "street", "city", "territory", "country", "hospital",
    "organisation", "date", "age", "phone", "email", "id_es_dni", "id_se_personnummer",
    "id_generic", "url", "ip", "profession", "keep", "redact", "mask",
)

# Labels that deid_rules adds when a label set has no class for them.
RULE_KINDS = {
    "EMAIL": "email", "URL": "url", "IP": "ip", "PHONE": "phone", "FAX": "phone",
    "DNI": "id_es_dni", "NIE": "id_es_dni", "PERSONNUMMER": "id_se_personnummer",
    "DATE": "date", "POSTCODE": "territory",
}
PRESETS: Dict[str, Dict[str, str]] = {
    "meddocan": {
        "NOMBRE_SUJETO_ASISTENCIA": "name",
        "NOMBRE_PERSONAL_SANITARIO": "name",
        # "su madre", "hermanos" or a relative's name: see _RELATIONS.
        "FAMILIARES_SUJETO_ASISTENCIA": "relative",
        "EDAD_SUJETO_ASISTENCIA": "age",
        # No surrogate: a changed sex would contradict the note (organs, pronouns, agreement),
        # so it is redacted in every mode; map it to "keep" to leave it in the text.
        "SEXO_SUJETO_ASISTENCIA": "redact",
        "FECHAS": "date",
        "TERRITORIO": "territory",
        "CALLE": "street",
        "PAIS": "country",
        "HOSPITAL": "hospital",
        "CENTRO_SALUD": "hospital",
        "INSTITUCION": "organisation",
        "ID_SUJETO_ASISTENCIA": "id_generic",
        "ID_ASEGURAMIENTO": "id_generic",
        "ID_TITULACION_PERSONAL_SANITARIO": "id_generic",
        "ID_CONTACTO_ASISTENCIAL": "id_generic",
        "ID_EMPLEO_PERSONAL_SANITARIO": "id_generic",
        "CORREO_ELECTRONICO": "email",
        "NUMERO_TELEFONO": "phone",
        "NUMERO_FAX": "phone",
        "PROFESION": "profession",
        # Free-form ("other identifying facts"): nothing of the same kind to draw from.
        "OTROS_SUJETO_ASISTENCIA": "redact",
        "URL_WEB": "url",
        "DIREC_PROT_INTERNET": "ip",
    },
    "swedish_ner": {"PER": "name", "LOC": "city", "ORG": "organisation", "MISC": "redact"},
    "stockholm_epr": {
        "First_Name": "first_name",
        "Last_Name": "last_name",
        "Phone_Number": "phone",
        "Age": "age",
        "Full_Date": "date",
        "Date_Part": "date",
        "Health_Care_Unit": "hospital",
        "Location": "city",
    },
}
for _preset in PRESETS.values():
    for _label, _kind in RULE_KINDS.items():
        _preset.setdefault(_label, _kind)
# The three label sets share no label, so their union serves any of them.
PRESETS["auto"] = {k: v for preset in list(PRESETS.values()) for k, v in preset.items()}

# Faker locale for a pipeline language.
LOCALES = {
    "es": "es_ES", "sv": "sv_SE", "en": "en_US", "ca": "es_ES", "da": "da_DK", "de": "de_DE",
    "et": "et_EE", "fi": "fi_FI", "fr": "fr_FR", "it": "it_IT", "nb": "no_NO", "nl": "nl_NL",
    "pt": "pt_PT",
}

if not Doc.has_extension("deidentified"):
    Doc.set_extension("deidentified", default=None)
if not Doc.has_extension("deid_spans"):
    Doc.set_extension("deid_spans", default=None)
if not Doc.has_extension("deid_group"):
    # Who the note is about (a patient id), set by the caller: with a key, the date shift and
    # the age delta are drawn per group, so a patient's notes keep their intervals.
    Doc.set_extension("deid_group", default=None)


# --------------------------------------------------------------------------
# Case- and accent-insensitive matching (Unicode case folding)
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    """One character folded: case folded, compatibility-decomposed, combining marks dropped
    ("É" and "e" + U+0301 -> "e", "ß" -> "ss", "İ" -> "i", "ſ" -> "s"); may be "" or longer."""
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    """`text` folded character by character (see fold_char): "GARCÍA", "garcia" and an
    NFD "García" all fold to "garcia"."""
    return "".join(fold_char(c) for c in text)


class FoldedText:
    """A text, its folded copy and the map between them, so that a match in the folded copy
    maps back to exact offsets of the original even where folding changes the length."""

    def __init__(self, text: str) -> None:
        self.text = text
        pieces = [fold_char(c) for c in text]
        self.folded = "".join(pieces)
        # Folded offset -> the first original character whose (non-empty) piece starts there.
        self._begin: Dict[int, int] = {}
        pos = 0
        for i, piece in enumerate(pieces):
            if piece and pos not in self._begin:
                self._begin[pos] = i
            pos += len(piece)
        self._nonempty = [bool(p) for p in pieces]

    def original_span(self, start: int, end: int) -> Optional[Tuple[int, int]]:
        """Original offsets of folded [start, end); None if either end cuts a character's
        piece ("s" of the "ss" of "ß"). Marks that fold to nothing after the end go with it."""
        if start not in self._begin or (end != len(self.folded) and end not in self._begin):
            return None
        return self._begin[start], self._begin[end] if end != len(self.folded) else len(self.text)

    def base_before(self, index: int) -> str:
        """The last original character before `index` that folds to something ("" if none):
        the letter under a combining mark, for word boundaries."""
        for i in range(index - 1, -1, -1):
            if self._nonempty[i]:
                return self.text[i]
        return ""

    def find(self, needle: str, word: bool = True) -> List[Tuple[int, int]]:
        """Original (start, end) of every (overlapping) occurrence of `needle` folded; with
        `word`, only those not glued to the word or number around them (see `glued`)."""
        key = fold(needle)
        found: List[Tuple[int, int]] = []
        if not key:
            return found
        one_char = len(key) == 1
        pos = self.folded.find(key)
        while pos >= 0:
            span = self.original_span(pos, pos + len(key))
            if span is not None and not (word and (
                    glued(self.base_before(span[0]), self.text[span[0]], one_char)
                    or glued(self.base_before(span[1]), self.text[span[1] : span[1] + 1], one_char))):
                found.append(span)
            pos = self.folded.find(key, pos + 1)
        return found


@functools.lru_cache(maxsize=16)
def folded_text(text: str) -> FoldedText:
    """FoldedText of `text`, cached (the same output is searched for many strings)."""
    return FoldedText(text)


def glued(left: str, right: str, one_char: bool = False) -> bool:
    """Whether two adjacent characters are inside one word: both digits, or both letters except
    a lower-case one before an upper-case one ("MartínezNºCol" is two words there). Around a
    one-character needle, any two letters or digits are glued ("H" is in neither "pH" nor "H1N1")."""
    if not left or not right:
        return False
    if one_char:
        return left.isalnum() and right.isalnum()
    if left.isdigit() and right.isdigit():
        return True
    return left.isalpha() and right.isalpha() and not (left.islower() and right.isupper())


def holds_word(haystack: str, needle: str) -> bool:
    """Whether `needle` occurs in `haystack` as a word, in any case or accent form."""
    key = fold(needle)
    return bool(key) and key in fold(haystack) and bool(folded_text(haystack).find(needle))


# --------------------------------------------------------------------------
# Check digits (the same two functions live in deid_rules.py, which must not import this file)
# --------------------------------------------------------------------------

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_letter(number: int) -> str:
    """Check letter of a Spanish DNI number (NIE: X/Y/Z read as 0/1/2 before the digits)."""
    return DNI_LETTERS[number % 23]


def luhn_digit(digits: str) -> int:
    """Luhn check digit of `digits` (for a personnummer: the 9 digits YYMMDDNNN)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


# --------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------

MONTHS = {
    "es": (
        ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
         "septiembre", "octubre", "noviembre", "diciembre"),
        ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
    ),
    "sv": (
        ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
         "september", "oktober", "november", "december"),
        ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    ),
    "en": (
        ("january", "february", "march", "april", "may", "june", "july", "august",
         "september", "october", "november", "december"),
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
}
# month word -> (month, is_abbreviation); the first language listed wins for shared words.
_MONTH_WORDS: Dict[str, Tuple[int, bool]] = {"setiembre": (9, False), "sept": (9, True)}
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
    """Parsable dates in `text`: (start, end, match), sorted; invalid dates are left out."""
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
    """(day, month, year) of a match of find_dates, None where absent; None if no real date."""
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


def _shifted_or_none(m: re.Match, shift: timedelta, lang: str) -> Optional[str]:
    """_shift_match, or None where the moved date leaves the calendar (31/12/9999 moved
    forward): that date is redacted (see DeidTransform), the others still move."""
    try:
        return _shift_match(m, shift, lang)
    except (OverflowError, ValueError):
        return None


def _shift_match(m: re.Match, shift: timedelta, lang: str) -> str:
    """The date of `m` moved by `shift`, written the way the original was written."""
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
    return _match_case(original, word)


# --------------------------------------------------------------------------
# Locale data: one Faker per locale, word lists pulled out once
# --------------------------------------------------------------------------


class _Pool:
    """Elements with optional weights (Faker keeps some lists as {name: weight})."""

    def __init__(self, elements) -> None:
        if isinstance(elements, dict):
            items = [(k, w) for k, w in elements.items() if " " not in k]
            self.elements = [k for k, _ in items]
            self.cum_weights: Optional[List[float]] = list(itertools.accumulate(w for _, w in items))
        else:
            self.elements = [e for e in elements if " " not in e]
            self.cum_weights = None
        self.lookup = {e.casefold() for e in self.elements}

    def draw(self, rng: random.Random) -> str:
        if self.cum_weights is None:
            return self.elements[int(rng.random() * len(self.elements))]
        return rng.choices(self.elements, cum_weights=self.cum_weights)[0]


class LocaleData:
    """A Faker of one locale plus its name lists, built once per process."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.lang = locale.split("_")[0]
        self.fake = Faker(locale)
        person = next(p for p in self.fake.get_providers() if hasattr(p, "last_names"))
        female = getattr(person, "first_names_female", None) or person.first_names
        male = getattr(person, "first_names_male", None) or person.first_names
        self.first_female = _Pool(female)
        self.first_male = _Pool(male)
        self.last = _Pool(person.last_names)
        address = next((p for p in self.fake.get_providers() if hasattr(p, "street_name")), None)
        self.states = {s.casefold() for s in getattr(address, "states", ())}
        self.regions = {s.casefold() for s in getattr(address, "regions", ())}
        # Words that say what a place is, not which: shared by originals and surrogates.
        self.generic_words = _GENERIC_PLACE_WORDS.get(self.lang, set()) | {
            w.casefold() for prefix in getattr(address, "street_prefixes", ()) for w in _WORD.findall(prefix)
        }
        self.tld = {"es": "es", "sv": "se", "en": "com"}.get(self.lang, self.locale.split("_")[-1].lower())


_LOCALE_DATA: Dict[str, LocaleData] = {}


def locale_data(locale: str) -> LocaleData:
    if locale not in _LOCALE_DATA:
        _LOCALE_DATA[locale] = LocaleData(locale)
    return _LOCALE_DATA[locale]


# --------------------------------------------------------------------------
# Surrogates of one document
# --------------------------------------------------------------------------

_NAME_KINDS = ("name", "first_name", "last_name")
# Kinship words: a FAMILIARES span made of these (and particles) names no one.
_RELATIONS = {
    "madre", "padre", "padres", "hijo", "hija", "hijos", "hijas", "hermano", "hermana", "hermanos",
    "hermanas", "familia", "familiares", "familiar", "esposo", "esposa", "marido", "mujer", "abuelo",
    "abuela", "abuelos", "abuelas", "tío", "tía", "tíos", "tías", "primo", "prima", "primos", "primas",
    "sobrino", "sobrina", "sobrinos", "nieto", "nieta", "nietos", "pareja", "cónyuge", "suegro", "suegra",
    "cuñado", "cuñada", "gemelo", "gemela", "gemelos", "mamá", "papá", "progenitores", "bisabuelo",
    "bisabuela", "hermanastro", "hermanastra", "novio", "novia", "su", "sus", "materno", "materna",
    "paterno", "paterna", "mor", "far", "mamma", "pappa", "son", "dotter", "bror", "syster", "make",
    "maka", "fru", "sambo", "barn", "föräldrar", "mormor", "morfar", "farmor", "farfar", "syskon",
    "mother", "father", "parents", "daughter", "brother", "sister", "wife", "husband",
}
# Units after an age ("8 días", "3 månader").
_AGE_UNITS = {
    "años", "año", "meses", "mes", "semanas", "semana", "días", "día", "dias", "dia", "horas",
    "år", "års", "månader", "månad", "veckor", "vecka", "dagar", "dag", "years", "months", "weeks", "days",
}
# A word of running text: not a piece of an e-mail address, URL or path ("osakidetza.net").
_PROSE_WORD = re.compile(r"(?<![\w.@/:-])[^\W\d_]+(?![\w@/-]|\.\w)")
# Kinds whose distinctive words (not generic_words) identify on their own: no surrogate may
# bring one back, and (name, hospital, organisation) their other mentions are replaced too.
_PART_KINDS = (*_NAME_KINDS, "street", "city", "territory", "country", "hospital", "organisation")
_PROPAGATED_PART_KINDS = (*_NAME_KINDS, "hospital", "organisation")
# Combining marks are no word characters to `re`: a decomposed (NFD) "García" is one word too.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_LETTERS = rf"[^\W\d_](?:[^\W\d_]|[{_MARKS}])*"
_WORD = re.compile(rf"{_LETTERS}(?:['’]{_LETTERS})*")
_PARTICLES = {"de", "del", "la", "las", "los", "y", "i", "da", "van", "von", "der", "af", "el"}
_TITLES = {"dr", "dra", "sr", "sra", "srta", "don", "doña", "dña", "prof", "doktor", "syster"}
_CAP = r"[A-ZÁÉÍÓÚÑÅÄÖ][^\W\d_]+"
# "Hospital Clínico de Madrid", "Complejo ... de Santiago de Compostela", "Sjukhuset i Lund"
_PLACE_TAIL = {
    "es": re.compile(r"^(.*?\s(?:de|del)\s+)(" + _CAP + r"(?:(?:\s+(?:de|del|la|las|los)\s+|[ -])" + _CAP + r")*)$"),
    "sv": re.compile(r"^(.*?\si\s+)(" + _CAP + r"(?:[ -]" + _CAP + r")*)$"),
}
_GENERIC_PLACE_WORDS = {
    "es": {
        "hospital", "hosp", "h", "universitario", "universitaria", "universitari", "general", "clínico",
        "clinico", "complejo", "hospitalario", "asistencial", "provincial", "comarcal", "regional",
        "materno", "infantil", "centro", "médico", "medico", "salud", "clínica", "clinica",
        "consultorio", "ambulatorio", "servicio", "unidad", "planta", "de", "del", "la", "las", "los",
        "el", "y", "calle", "avenida", "plaza", "paseo",
    },
    "sv": {
        "sjukhus", "sjukhuset", "universitetssjukhus", "universitetssjukhuset", "lasarett",
        "lasarettet", "vårdcentral", "vårdcentralen", "avdelning", "avd", "i", "och",
    },
}
# Street types as written before a street's name ("C/ ", "Avda. de ", "Storgatan" has none).
_STREET_TYPE = re.compile(
    r"(?i)\s*(?:c/|c\.|calle|avda\.?|avd\.?|av\.?|avenida|paseo|p[ºo]\.?|plaza|pza\.?|pl\.?|ctra\.?|"
    r"carretera|travesía|trav\.?|camino|ronda|glorieta|rambla|vía|via|vial|urbanización|urb\.?|"
    r"callejón|pasaje|pje\.?|passeig|carrer|rúa|rua|cuesta|bulevar|polígono|pol\.?|acceso|alameda|"
    r"cañada|pasadizo)(?:\s+|(?<=[/.]))(?:(?:de las|de los|de la|del|de|d')\s+)?"
)
# A street's name, then the rest: its number, "s/n", floor and door.
_STREET_TAIL = re.compile(r"(.*?)(?=[\s,]*(?:\d|s/n|S/N|n[º°o]\.?\s|núm|$))", re.S)
# Words of a street's number part: floor, door, "s/n" (Spanish, Swedish).
_STREET_TAIL_WORDS = {
    "nº", "núm", "num", "bajo", "bajos", "izda", "izq", "izquierda", "dcha", "der", "derecha", "piso",
    "puerta", "pta", "esc", "escalera", "portal", "bloque", "blq", "local", "ático", "entlo",
    "entresuelo", "principal", "pral", "urb", "apto", "dpto", "planta", "lgh", "vån", "nb",
}
_LONE_LETTER = re.compile(r"([sS]/[nN])|(?<![^\W\d_])[A-Za-z](?![^\W\d_])")
_ORG_HEAD = re.compile(
    r"(?i)(ayuntamiento|universidad|colegio|instituto|residencia|fundación|asociación|escuela|"
    r"consejería|diputación|juzgado|policía|guardia civil)\b"
)
_NOT_NAMES = _PARTICLES | _TITLES
_COMPANY_SUFFIX = re.compile(
    r"\s+(S\.?L\.?(N\.?E\.?|L\.?|U\.?)?|S\.?A\.?|S\.?Coop\.?|AB|HB|KB)$"
)


def _match_case(original: str, new: str) -> str:
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original.islower():
        return new.lower()
    return new


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", text.lower())


def _random_digits_like(text: str, rng: random.Random, keep: int = 0) -> str:
    """Every digit after the first `keep` ones replaced by a random digit; the rest kept."""
    out = []
    seen = 0
    for ch in text:
        if ch.isdigit():
            if seen >= keep:
                ch = str(rng.randint(1 if seen == 0 and ch != "0" else 0, 9))
            seen += 1
        out.append(ch)
    return "".join(out)


_DNI_RE = re.compile(r"^(\d{1,2})(\.?)(\d{3})(\.?)(\d{3})([\s-]?)([A-Za-z])$")
_NIE_RE = re.compile(r"^([XYZxyz])([\s-]?)(\d{7})([\s-]?)([A-Za-z])$")
_PNR_RE = re.compile(r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+ ]?)(\d{3})(\d)$")
_LETTER_RUN = re.compile(r"[^\W\d_]+")


_WORD_START = re.compile(r"(?<!\w)\w")
_WORD_END = re.compile(r"\w(?!\w)")


def word_runs(text: str, max_chars: int = 80) -> Iterator[str]:
    """Every substring of `text` that starts at the start of a word and ends at the end of
    one (whitespace runs as one space): "ana garcía, 45" gives "ana", "ana garcía",
    "ana garcía, 45", "garcía", ..."""
    text = " ".join(text.split())
    starts = [m.start() for m in _WORD_START.finditer(text)]
    ends = [m.end() for m in _WORD_END.finditer(text)]
    for start in starts:
        for end in ends:
            if start < end <= start + max_chars:
                yield text[start:end]


class FoldedStrings(frozenset):
    """Strings already folded (see `fold`) and whitespace-normalised: `Surrogates` folds
    any other set it is given, once per document."""

    @classmethod
    def of(cls, strings: AbstractSet[str]) -> "FoldedStrings":
        return strings if isinstance(strings, cls) else cls(fold(" ".join(s.split())) for s in strings)


class Surrogates:
    """Draws the surrogates of one document and remembers them (consistency).

    All draws come from one `random.Random`, shared with Faker. Without a key it is seeded
    for the document and draws run on in order. With a key, each value's draws are reseeded
    from HMAC-SHA256(key, what is drawn + its folded original) (see `_scope`), so the same
    real value gets the same surrogate in every note of a run, and nobody without the key
    can recompute a surrogate from a candidate original.
    """

    def __init__(self, data: LocaleData, rng: random.Random, originals: Sequence[Tuple[str, str]],
                 max_date_shift: int, max_age_shift: int, avoid_strings: AbstractSet[str] = frozenset(),
                 key: Optional[bytes] = None, group: str = "") -> None:
        self.data = data
        self.rng = rng
        data.fake.random = rng
        self.key = key
        # With a key: whose dates and ages these are (the date shift and age delta are drawn
        # per group: a patient id, or the note's text).
        self.group = group
        self._name_attempt = 0
        self.max_date_shift = max_date_shift
        self._shift: Optional[timedelta] = None
        self.max_age_shift = max_age_shift
        self._age_delta: Optional[int] = None
        # No surrogate may contain, as a whole word, one of the document's entity strings
        # ("77 años" moved onto another age, "14" inside a drawn ID) or a distinctive word of
        # its names and places ("Salamanca" drawn as the city of a surrogate hospital).
        avoid = {fold(text) for _, text in originals if fold(text).strip()}
        generic = data.generic_words | _NOT_NAMES | _STREET_TAIL_WORDS | _AGE_UNITS
        for kind, text in originals:
            if kind in _PART_KINDS:
                # A street's type ("Avda.") and an organisation's head ("Ayuntamiento") are
                # kept in the surrogate by design: they name no one.
                head = _STREET_TYPE.match(text) if kind == "street" else _ORG_HEAD.match(text) if kind == "organisation" else None
                avoid.update(fold(w) for w in _WORD.findall(text[head.end() if head else 0:])
                             if len(w) > 2 and w.casefold() not in generic)
        self._avoid_re = re.compile(
            r"(?<!\w)(?:" + "|".join(re.escape(a) for a in sorted(avoid, key=len, reverse=True)) + r")(?!\w)"
        ) if avoid else None
        # Strings from outside the document that no surrogate may hold either (casefolded,
        # whitespace runs as one space): the real corpus's PHI when a synthetic corpus is
        # pseudonymized, so that no drawn name, town or shifted date is a real one.
        self.avoid_strings = FoldedStrings.of(avoid_strings)
        self.date_originals = [text for kind, text in originals if kind == "date"]
        self.age_originals = [text for kind, text in originals if kind == "age"]
        self.parts: Dict[str, str] = {}  # name part (folded) -> surrogate
        self.values: Dict[Tuple[str, str], str] = {}
        self._avoid = ""  # the text being replaced

    @property
    def shift(self) -> timedelta:
        """The document's date offset, drawn at first use so that no shifted date lands on
        another date of the document (that would leave an original date string in the text,
        "2018" moved to "2019" while "2017-12-30" moved to "2018-02-03")."""
        if self._shift is None:
            if self.max_date_shift <= 0:
                self._shift = timedelta(0)
                return self._shift
            matches = [m for text in self.date_originals for _, _, m in find_dates(text)]
            # Years only ("2005", "2006", "2007") may have no offset within max_date_shift
            # that moves each onto a year not in the note: the range then widens by a year
            # at a time (the offset is still one per document, so intervals are kept).
            with self._scope("date-shift", self.group):
                for attempt in range(100):
                    sign = 1 if self.rng.random() < 0.5 else -1
                    days = self.max_date_shift * (1 + attempt // 5)
                    self._shift = timedelta(days=sign * self.rng.randint(1, days))
                    moved = (_shifted_or_none(m, self._shift, self.data.lang) for m in matches)
                    if not any(text is not None and self.leaks(text) for text in moved):
                        break
        return self._shift

    @contextlib.contextmanager
    def _scope(self, *what: str) -> Iterator[None]:
        """With a key: the draws inside come from a stream seeded by HMAC-SHA256(key, what),
        and the stream outside is left as it was (so a value drawn in a nested scope, or
        found already drawn, changes nothing around it). Without a key: nothing."""
        if self.key is None:
            yield
            return
        state = self.rng.getstate()
        message = "\x1f".join(what).encode("utf8", "surrogatepass")
        self.rng.seed(int.from_bytes(hmac.new(self.key, message, hashlib.sha256).digest(), "big"))
        try:
            yield
        finally:
            self.rng.setstate(state)

    def get(self, kind: str, text: str) -> str:
        """The surrogate of `text` as a `kind`; the same for the same value (names: the same
        string; others: in any case or accent form). May raise on a value it cannot handle
        (DeidTransform then redacts it)."""
        key = (kind, text if kind in _NAME_KINDS else fold(text))
        if key not in self.values:
            outer, self._avoid = self._avoid, fold(text)
            try:
                with self._scope("value", kind, fold(" ".join(text.split()))):
                    self.values[key] = getattr(self, "_" + kind)(text)
            finally:
                self._avoid = outer
        value = self.values[key]
        return value if kind in _NAME_KINDS else _match_case(text, value)

    def leaks(self, value: str) -> bool:
        """Whether `value` holds one of the document's originals (see __init__), or one of
        `avoid_strings`, as a word or run of words."""
        folded = fold(value)
        if folded == self._avoid or (self._avoid_re and self._avoid_re.search(folded)):
            return True
        return bool(self.avoid_strings) and any(part in self.avoid_strings for part in word_runs(folded))

    def _fresh(self, draw: Callable[[], str], tries: int = 20) -> str:
        """A draw that holds none of the document's originals (the last one after `tries`)."""
        value = draw()
        for _ in range(tries):
            if not self.leaks(value):
                break
            value = draw()
        return value

    # Names --------------------------------------------------------------

    def _name(self, text: str, role: Optional[str] = None) -> str:
        """Each name part gets its own surrogate (kept for the document); a whole name that
        comes out as a string to avoid ("Paula Egea Capdevila", a real name) has its newly
        drawn parts drawn again."""
        for attempt in range(10):
            before = set(self.parts)
            self._name_attempt = attempt  # with a key: the parts' next draw (see _part)
            try:
                value = self._assemble_name(text, role)
            finally:
                self._name_attempt = 0
            new = set(self.parts) - before
            if not new or not self.leaks(value):
                break
            for key in new:
                del self.parts[key]
        return value

    def _assemble_name(self, text: str, role: Optional[str]) -> str:
        words = list(_WORD.finditer(text))
        if not words:  # no letters: not a name after all, but still replaced
            return self._id_generic(text, detect=False)
        real = [m for m in words if len(words) == 1 or m.group().casefold() not in _NOT_NAMES]
        comma = text.find(",")
        roles: Dict[int, str] = {}
        for i, m in enumerate(real):
            if role:
                roles[m.start()] = role
            elif comma >= 0:
                roles[m.start()] = "last" if m.start() < comma else "first"
            elif len(real) == 1:
                roles[m.start()] = self._guess_role(m.group())
            else:
                # Leading first names ("María José García"): the first word unless it is only
                # known as a surname ("Andreu Fonseca"), then known first names; never the last.
                word = m.group()
                if i == 0:
                    leading = self._is_first_name(word) or unicodedata.normalize("NFC", word).casefold() not in self.data.last.lookup
                else:
                    leading = (
                        i < len(real) - 1
                        and roles.get(real[i - 1].start()) == "first"
                        and self._is_first_name(word)
                    )
                roles[m.start()] = "first" if leading else "last"
        out, pos = [], 0
        for m in words:
            out.append(text[pos : m.start()])
            pos = m.end()
            if m.start() not in roles:
                out.append(m.group())
            else:
                out.append(self._part(m.group(), roles[m.start()]))
        out.append(text[pos:])
        return "".join(out)

    def _first_name(self, text: str) -> str:
        return self._name(text, "first")

    def _last_name(self, text: str) -> str:
        return self._name(text, "last")

    def _is_first_name(self, word: str) -> bool:
        folded = unicodedata.normalize("NFC", word).casefold()
        return folded in self.data.first_female.lookup or folded in self.data.first_male.lookup

    def _guess_role(self, word: str) -> str:
        folded = unicodedata.normalize("NFC", word).casefold()
        if fold(word) in self.parts or folded in self.data.last.lookup:
            return "last"
        return "first" if self._is_first_name(word) else "last"

    def _part(self, word: str, role: str) -> str:
        """A name part's surrogate, the same for the part in any case or accent form. With a
        key it is drawn from the part alone (and its role), so a surname gets the same
        surrogate alone and inside every full name, in every note of the run."""
        folded = unicodedata.normalize("NFC", word).casefold()  # the name lists are NFC
        initial = len(folded) == 1
        key = fold(word) + "." if initial else fold(word)
        if key not in self.parts:
            with self._scope("name-part", role, key, str(self._name_attempt)):
                self.parts[key] = self._draw_part(word, folded, role, initial)
        return _match_case(word, self.parts[key])

    def _draw_part(self, word: str, folded: str, role: str, initial: bool) -> str:
        """A drawn name part: a first name of the sex the original looks like, or a surname."""
        if role == "first":
            female = folded in self.data.first_female.lookup
            male = folded in self.data.first_male.lookup
            if female == male:
                if self.data.lang == "es" and folded[-1:] in ("a", "o"):  # Spanish endings
                    female = folded.endswith("a")
                else:
                    female = self.rng.random() < 0.5
            pool = self.data.first_female if female else self.data.first_male
        else:
            pool = self.data.last
        value = self._fresh(lambda: pool.draw(self.rng))
        if initial:
            value = next((c for c in value if c.upper() != word.upper()), value[0])
            value = value.upper()
        return value

    # Places and organisations -------------------------------------------

    def _city(self, text: str) -> str:
        return self._fresh(self.data.fake.city)

    def _territory(self, text: str) -> str:
        folded = text.casefold()
        if re.fullmatch(r"[\d\s-]+", text):
            if self.data.lang == "es" and re.fullmatch(r"\d{5}", text):  # province 01-52 + 3 digits
                return f"{self.rng.randint(1, 52):02d}{self.rng.randint(0, 999):03d}"
            return _random_digits_like(text, self.rng, keep=0)
        fake = self.data.fake
        if folded in self.data.regions and hasattr(fake, "region"):
            return self._fresh(fake.region)
        if folded in self.data.states and hasattr(fake, "state"):
            return self._fresh(fake.state)
        return self.get("city", text)  # the same town as a city or inside a hospital's name

    def _country(self, text: str) -> str:
        return self._fresh(self.data.fake.country)

    def _street(self, text: str) -> str:
        """The original's form kept: its street type as written ("C/", "Avda. de"), a drawn
        street name, and its number part with the digits drawn ("3, 2º A", "s/n")."""
        head = _STREET_TYPE.match(text)
        head_text = head.group() if head else ""
        tail = text[_STREET_TAIL.match(text, len(head_text)).end(1):]
        if any(len(w) > 2 and w.casefold() not in _STREET_TAIL_WORDS for w in _WORD.findall(tail)):
            # More than a number, floor and door: a span that ran on over a town or more
            # text. None of it stays; a number does.
            head_text, tail = "", f" {self.rng.randint(1, 150)}" if re.search(r"\d", text) else ""

        def draw() -> str:
            name = self.data.fake.street_name()
            if head_text:  # the drawn name without its own street type
                name = name[len(m.group()):] if (m := _STREET_TYPE.match(name)) else name
            # Digits drawn; single letters (door "B") drawn, but not those of "s/n".
            rest = _LONE_LETTER.sub(lambda m: m.group() if m.group(1) else _match_case(
                m.group(), chr(65 + self.rng.randint(0, 25))), _random_digits_like(tail, self.rng))
            return f"{head_text}{name}{rest}"

        return self._fresh(draw)

    def _hospital(self, text: str) -> str:
        fake, rng, folded = self.data.fake, self.rng, text.casefold()
        if self.data.lang == "sv":
            if "vårdcentral" in folded:
                templates = ["Vårdcentralen {city}", "{city} vårdcentral"]
            elif re.match(r"avd", folded):
                if re.search(r"\d", text):
                    return self._fresh(lambda: _random_digits_like(text, rng))
                return "avdelning " + str(rng.randint(1, 99))
            else:
                templates = ["{city} sjukhus", "Universitetssjukhuset i {city}", "Sjukhuset i {city}", "{city} lasarett"]
        elif self.data.lang == "es":
            if re.search(r"centro de salud|\bc\.\s?s\.|ambulatorio|consultorio", folded):
                templates = ["Centro de Salud {city}", "Centro de Salud {last}", "Consultorio de {city}"]
            elif folded.startswith("clínica"):
                templates = ["Clínica {last}", "Clínica de {city}"]
            else:  # masculine, like "el Hospital ..."
                templates = ["Hospital Universitario de {city}", "Hospital General de {city}", "Hospital Clínico de {city}",
                             "Complejo Hospitalario de {city}", "Hospital {last}"]
        else:
            templates = ["{city} Hospital", "{last} Medical Center"]
        place = _PLACE_TAIL[self.data.lang].match(text) if self.data.lang in _PLACE_TAIL else None
        if place and not all(w.casefold() in self.data.generic_words for w in _WORD.findall(place.group(1))):
            place = None  # "Hospital Sant Joan de Reus": the head names the hospital too
        if place and not templates[0].startswith("Centro"):
            # "Hospital Universitario de Getafe": the type stays, the place gets the surrogate
            # of that place, so it agrees with the town named elsewhere in the note.
            return place.group(1) + self.get("city", place.group(2))
        template = templates[int(rng.random() * len(templates))]
        return self._fresh(lambda: template.format(city=fake.city(), last=self.data.last.draw(rng)))

    def _organisation(self, text: str) -> str:
        head = _ORG_HEAD.match(text) if self.data.lang == "es" else None
        if head:  # "Ayuntamiento de Zaragoza" -> "Ayuntamiento de Lugo"
            return self._fresh(lambda: f"{head.group(1)} de {self.data.fake.city()}")
        return self._fresh(lambda: _COMPANY_SUFFIX.sub("", self.data.fake.company()).strip(" ,"))

    def _profession(self, text: str) -> str:
        def draw() -> str:
            for _ in range(20):
                job = self.data.fake.job().split("(")[0].split(",")[0].strip()
                if len(job.split()) <= 3:
                    return job
            return job
        return self._fresh(draw)

    # Dates and ages ------------------------------------------------------

    def _date(self, text: str) -> str:
        found = find_dates(text)
        if not found:
            # Nothing to shift ("ayer", "Semana Santa"): a date of the same document period.
            new = date(2000, 1, 1) + timedelta(days=self.rng.randint(0, 20 * 365))
            return f"{new.day:02d}/{new.month:02d}/{new.year}" if self.data.lang == "es" else new.isoformat()
        out, pos = [], 0
        for start, end, m in found:
            out.append(text[pos:start])
            out.append(_shift_match(m, self.shift, self.data.lang))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    @property
    def age_delta(self) -> int:
        """The document's age offset, drawn at first use so that no moved age holds another
        original of the note ("79 años" moved onto "77 años"): deltas up to max_age_shift
        first, then up to 5 more."""
        if self._age_delta is None:
            self._age_delta = 0
            if self.max_age_shift > 0:
                with self._scope("age-delta", self.group):
                    for limit in (self.max_age_shift, self.max_age_shift + 5):
                        deltas = [d for d in range(-limit, limit + 1) if d]
                        self.rng.shuffle(deltas)
                        for delta in deltas:
                            self._age_delta = delta
                            if not any(self.leaks(self._move_age(text)) for text in self.age_originals):
                                return delta
        return self._age_delta

    def _move_age(self, text: str) -> str:
        def move(m: re.Match) -> str:
            n = int(m.group())
            if n >= 90:  # HIPAA: ages over 89 are one group; any age of that group will do
                return str(90 + (n - 90 + abs(self._age_delta)) % 10)
            if n == 0:
                return m.group()
            new = n + self._age_delta
            if not 1 <= new <= 89:
                new = n - self._age_delta
            return str(max(new, 1))

        return re.sub(r"\d+", move, text)

    def _age(self, text: str) -> str:
        if not re.search(r"\d", text):
            return self._fresh(lambda: str(self.rng.randint(20, 85)))
        self.age_delta  # noqa: B018  (drawn once per document, before the first move)
        return self._move_age(text)

    # Contact details, IDs ------------------------------------------------

    def _phone(self, text: str) -> str:
        # Keep the country code, the trunk 0 and the first digit of the number (mobile or
        # landline, the format stays valid); every other digit is drawn.
        m = re.match(r"\s*(?:\+|00)(\d{2})[\s.-]*(?:\(0\)\s*)?", text)
        keep = 2 if m else 0
        rest = text[m.end():] if m else text
        keep += 2 if rest.lstrip("(").startswith("0") else 1
        return self._fresh(lambda: _random_digits_like(text, self.rng, keep=keep))

    def _email(self, text: str) -> str:
        first = _ascii(self.data.first_female.draw(self.rng) if self.rng.random() < 0.5 else self.data.first_male.draw(self.rng))
        last = _ascii(self.data.last.draw(self.rng))
        user = [f"{first}.{last}", f"{first[:1]}{last}", f"{first}{self.rng.randint(1, 99)}"][self.rng.randint(0, 2)]
        return self._fresh(lambda: f"{user}@{self.data.fake.free_email_domain()}")

    def _url(self, text: str) -> str:
        scheme = re.match(r"(?i)(https?://)?(www\.)?", text)
        word = _ascii(self.data.last.draw(self.rng)) or "clinica"
        return self._fresh(lambda: f"{scheme.group(1) or ''}{scheme.group(2) or ''}{word}.{self.data.tld}")

    def _ip(self, text: str) -> str:
        if ":" in text:
            return ":".join(f"{self.rng.randint(0, 0xFFFF):x}" for _ in range(8))
        return ".".join(str(self.rng.randint(1 if i == 0 else 0, 223 if i == 0 else 255)) for i in range(4))

    def _id_es_dni(self, text: str) -> str:
        if _DNI_RE.match(text):
            m = _DNI_RE.match(text)
            number = self.rng.randint(10_000_000, 99_999_999)
            digits = f"{number:08d}"
            if len(m.group(1)) == 1:  # "1.234.567-L": seven digits, keep the length
                number = self.rng.randint(1_000_000, 9_999_999)
                digits = str(number)
            head = digits[: len(digits) - 6]
            letter = _match_case(m.group(7), dni_letter(number))
            return f"{head}{m.group(2)}{digits[-6:-3]}{m.group(4)}{digits[-3:]}{m.group(6)}{letter}"
        m = _NIE_RE.match(text)
        if m:
            first = self.rng.randint(0, 2)
            body = f"{self.rng.randint(0, 9_999_999):07d}"
            letter = dni_letter(int(f"{first}{body}"))
            prefix = _match_case(m.group(1), "XYZ"[first])
            return f"{prefix}{m.group(2)}{body}{m.group(4)}{_match_case(m.group(5), letter)}"
        return self._id_generic(text, detect=False)

    def _id_se_personnummer(self, text: str) -> str:
        m = _PNR_RE.match(text)
        if not m:
            return self._id_generic(text, detect=False)
        century, yy, mm, dd, sep, serial, _ = m.groups()
        coordination = int(dd) > 60  # samordningsnummer: day + 60
        try:
            year = int(century) * 100 + int(yy) if century else 1900 + int(yy) + (100 if int(yy) <= 25 and sep != "+" else 0)
            born = date(year, int(mm), int(dd) - (60 if coordination else 0)) + self.shift
        except ValueError:
            born = date(1930, 1, 1) + timedelta(days=self.rng.randint(0, 80 * 365))
        # The third serial digit is odd for men and even for women: keep its parity.
        parity = int(serial[2]) % 2
        new_serial = f"{self.rng.randint(0, 99):02d}{self.rng.randrange(parity, 10, 2)}"
        day = born.day + (60 if coordination else 0)
        body = f"{born.year % 100:02d}{born.month:02d}{day:02d}{new_serial}"
        prefix = f"{born.year // 100}" if century else ""
        return f"{prefix}{body[:6]}{sep}{body[6:]}{luhn_digit(body)}"

    def _id_generic(self, text: str, detect: bool = True) -> str:
        stripped = text.strip()
        if detect and stripped == text:
            if _DNI_RE.match(text) or _NIE_RE.match(text):
                return self._id_es_dni(text)
            if _PNR_RE.match(text):
                return self._id_se_personnummer(text)
        # Letter runs of two or more are prefixes ("NHC", "COL"): kept, unless there is no
        # digit to draw (then every letter is). Single letters and digits are drawn.
        shortest_drawn = 1 if re.search(r"\d", text) else 10**6
        if shortest_drawn == 1 and any(not _is_id_prefix(run) for run in _LETTER_RUN.findall(text)):
            # Words ("raza caucásica de 21 años": a model's ID span run over prose) are no
            # prefix: kept, they would carry the text through. The span is redacted instead.
            raise NotAnId()

        def draw() -> str:
            out = _random_digits_like(text, self.rng)
            return _LETTER_RUN.sub(
                lambda m: m.group() if len(m.group()) > shortest_drawn else "".join(
                    _match_case(c, chr(65 + self.rng.randint(0, 25))) for c in m.group()), out
            )
        return self._fresh(draw)

    # Kept -----------------------------------------------------------------

    def _keep(self, text: str) -> str:
        return text


# --------------------------------------------------------------------------
# The component
# --------------------------------------------------------------------------


KEY_ENV_VAR = "DEID_SURROGATE_KEY"
MIN_KEY_BYTES = 16


class _Secret:
    """Bytes that never show: not in repr, str or any message (the surrogate key)."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __getstate__(self) -> bytes:  # pickled with the component for spawned workers
        return self.value

    def __setstate__(self, value: bytes) -> None:
        self.value = value


def _key_bytes(raw: bytes) -> bytes:
    """A key as written in a file or variable: hex digits (whitespace around them ignored)
    are decoded, anything else is the key's bytes as they are."""
    stripped = raw.strip()
    if stripped and len(stripped) % 2 == 0 and re.fullmatch(rb"[0-9a-fA-F]+", stripped):
        return bytes.fromhex(stripped.decode("ascii"))
    return raw


def _check_key(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES or len(set(key)) < 4:
        raise ValueError(f"{where}: the surrogate key is too short or too uniform (at least "
                         f"{MIN_KEY_BYTES} random bytes, e.g. 32 bytes written as 64 hex digits)")
    return key


def load_key(key_file: Optional[Path] = None, env_var: str = KEY_ENV_VAR) -> Optional[bytes]:
    """The surrogate key, from `key_file` if given, else from the environment variable
    `env_var`; hex digits or raw bytes, at least 16 bytes. None if neither is given.
    ValueError naming the file or variable (never the key) if unreadable or too short."""
    if key_file is not None:
        try:
            raw = Path(key_file).read_bytes()
        except OSError as err:
            raise ValueError(f"{key_file}: cannot read the surrogate key file ({type(err).__name__})") from None
        return _check_key(_key_bytes(raw), str(key_file))
    value = os.environ.get(env_var)
    if not value:
        return None
    return _check_key(_key_bytes(value.encode("utf8", "surrogateescape")), f"${env_var}")


class Mention(NamedTuple):
    """A span to replace, by characters: a found entity, or another mention of its string
    that propagation found (which need not fall on token boundaries)."""

    start_char: int
    end_char: int
    label_: str
    text: str
    n_tokens: int

    @classmethod
    def of(cls, span: Span) -> "Mention":
        return cls(span.start_char, span.end_char, span.label_, span.text, len(span))


def _uncovered(start: int, end: int, taken: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """The parts of [start, end) that no span of `taken` covers, in order."""
    return Coverage(taken).uncovered(start, end)


class Coverage:
    """The union of character spans, kept as sorted disjoint intervals, so that a note dense
    with mentions (a million characters of phone numbers) is covered and queried in
    logarithmic time per span, not by scanning every span taken so far (quadratic)."""

    def __init__(self, spans: Iterable[Tuple[int, int]] = ()) -> None:
        self.starts: List[int] = []
        self.ends: List[int] = []
        for start, end in sorted(spans):
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        """Cover [start, end), merging it with the intervals it overlaps or touches."""
        if start >= end:
            return
        lo = bisect.bisect_left(self.ends, start)  # first interval ending at or after start
        hi = bisect.bisect_right(self.starts, end)  # intervals from lo to hi overlap or touch
        if lo < hi:
            start, end = min(start, self.starts[lo]), max(end, self.ends[hi - 1])
        self.starts[lo:hi], self.ends[lo:hi] = [start], [end]

    def uncovered(self, start: int, end: int) -> List[Tuple[int, int]]:
        """The parts of [start, end) outside every interval, in order."""
        pieces, pos = [], start
        i = bisect.bisect_right(self.ends, start)  # first interval ending after start
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > pos:
                pieces.append((pos, self.starts[i]))
            pos = max(pos, self.ends[i])
            i += 1
        if pos < end:
            pieces.append((pos, end))
        return pieces


class NotAnId(Exception):
    """An ID span holding words, not an ID: redacted instead (see Surrogates._id_generic)."""


def _is_id_prefix(run: str) -> bool:
    """A letter run an ID may keep: a short code ("NHC", "Col", "Nº"), or a longer one in
    capitals ("NASS"), not a word of prose."""
    return len(run) <= 3 or (run.isupper() and len(run) <= 6)


class SurrogateLeak(Exception):
    """A surrogate that holds its original: the span is redacted instead."""


def document_seed(seed: int, text: str) -> int:
    """Seed of a document's draws: depends on the component's seed and the text only."""
    digest = hashlib.blake2b(text.encode("utf8", "surrogatepass"), digest_size=8, key=str(seed).encode("utf8"))
    return int.from_bytes(digest.digest(), "little")


class DeidTransform:
    """Writes `doc._.deidentified` and `doc._.deid_spans` from `doc.ents`."""

    def __init__(self, name: str, lang: str, mode: str = "pseudonymize", mask_char: str = "*",
                 preset: str = "auto", label_map: Optional[Dict[str, str]] = None,
                 default_kind: str = "redact", seed: int = 0, locale: Optional[str] = None,
                 redact_template: str = "[{label}]", max_date_shift: int = 365,
                 max_age_shift: int = 2, rules_key: str = "deid_rules", max_kept_tokens: int = 3,
                 propagate: bool = True, no_surrogate: str = "redact",
                 avoid_strings: AbstractSet[str] = frozenset()) -> None:
        if preset not in PRESETS:
            raise ValueError(f"deid_transform: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        self.name = name
        self.mode = mode
        self.mask_char = mask_char
        self.preset = preset
        self.label_map = {**PRESETS[preset], **(label_map or {})}
        self.default_kind = default_kind
        self.seed = seed
        self.locale = locale or LOCALES.get(lang, "en_US")
        self.redact_template = redact_template
        self.max_date_shift = max_date_shift
        self.max_age_shift = max_age_shift
        self.rules_key = rules_key
        # A span of a kept label longer than this is redacted: a wrong, overlong prediction
        # (a kept label stretched over a paragraph) must not carry the PHI inside it through.
        self.max_kept_tokens = max_kept_tokens
        # Other mentions of a string the model found ("Madrid" tagged once, missed twice), and
        # of a distinctive word of a found name or institution ("García" of "Ana García"), are
        # replaced too, with the same surrogate.
        self.propagate = propagate
        # What pseudonymize does with values that have no surrogate (sex, kinship words, free
        # text): "redact", or "keep" (a training corpus, where a placeholder teaches nothing).
        if no_surrogate not in ("redact", "keep"):
            raise ValueError(f"deid_transform: no_surrogate must be 'redact' or 'keep', not {no_surrogate!r}")
        self.no_surrogate = no_surrogate
        # No surrogate may hold one of these (see Surrogates); not part of the factory's
        # config: pseudonymize_corpus passes the real corpus's PHI strings, in memory only.
        self.avoid_strings = FoldedStrings.of(avoid_strings)
        # The surrogate key (see set_key): in memory only, never in the config, meta or output.
        self._key: Optional[_Secret] = None
        bad = {k for k in [default_kind, *self.label_map.values()] if k not in KINDS}
        if bad:
            raise ValueError(f"deid_transform: unknown surrogate kind(s) {sorted(bad)}; choose from {list(KINDS)}")
        if len(mask_char) != 1:
            raise ValueError("deid_transform: mask_char must be one character")

    def set_key(self, key: Optional[bytes]) -> None:
        """Draw surrogates with this secret key (None: without, from the text and `seed`,
        which anyone holding the output can recompute for a candidate original).

        With a key, every draw comes from HMAC-SHA256(key, kind + folded original), so the
        same real value gets the same surrogate in every note of a run, and the date shift
        and age delta are drawn per `doc._.deid_group` (per note when it is None). The key
        stays in memory: not in the config, to_disk, meta, repr or any message; it is
        pickled with the component (spaCy's n_process > 1 under the spawn start method)."""
        if key is None:
            self._key = None
            return
        if not isinstance(key, (bytes, bytearray)):
            raise ValueError("deid_transform: the surrogate key must be bytes")
        self._key = _Secret(_check_key(bytes(key), "deid_transform"))

    @property
    def keyed(self) -> bool:
        """Whether surrogates are drawn with a secret key (see set_key)."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"<DeidTransform {self.name!r} mode={self._mode} keyed={self.keyed}>"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"deid_transform: unknown mode {value!r}; choose one of {MODES}")
        self._mode = value

    def kind(self, label: str) -> str:
        return self.label_map.get(label, self.default_kind)

    def kind_of(self, ent: Union[Span, Mention]) -> str:
        """An entity's kind: its label's, with "relative" settled on its text (kinship words
        only: "redact"; else a name)."""
        kind = self.kind(ent.label_)
        if kind == "relative":
            words = [w.casefold() for w in _WORD.findall(ent.text)]
            kind = "redact" if all(w in _RELATIONS or w in _PARTICLES for w in words) else "name"
        return kind

    def with_age_units(self, doc: Doc) -> List[Span]:
        """doc.ents, with an age that is a bare number followed by its unit ("8" of "8 días")
        extended over the unit: the whole string is then replaced, and propagated."""
        ents = []
        for e in doc.ents:
            if (self.kind(e.label_) == "age" and e.text.isdigit() and e.end < len(doc)
                    and doc[e.end].lower_ in _AGE_UNITS and doc[e.end].ent_iob_ == "O"):
                e = Span(doc, e.start, e.end + 1, label=e.label_)
            ents.append(e)
        return ents

    def with_other_mentions(self, doc: Doc, ents: Sequence[Span], text: Optional[str] = None) -> List[Mention]:
        """`ents` plus the other whole-word mentions, with the same label, of their strings of
        at least 4 characters (kinds that are replaced) and of the capitalised words of their
        names and institutions that the note never writes in lower case (so "Paciente" of a
        wrong "Paciente Juan" stays). Mentions match in any case or accent form ("GARCIA",
        "garcía" for "García"; see `fold`), as words the way residual_phi counts them, and by
        characters: one glued to other text ("GarcíaNºCol") is replaced too. A mention that
        overlaps a span already taken has the rest of it replaced (see below)."""
        doc_text = doc.text if text is None else text  # doc.text is built anew at each access
        strings: Dict[str, str] = {}  # folded string -> label
        for e in ents:
            if len(e.text) >= 4 and self.kind_of(e) != "keep" and fold(e.text).strip():
                strings.setdefault(fold(e.text), e.label_)
        parts: Dict[str, str] = {}
        for e in ents:
            if self.kind_of(e) in _PROPAGATED_PART_KINDS:
                for word in _WORD.findall(e.text):
                    if len(word) >= 4 and word[0].isupper() and not word.isupper() and word.casefold() not in _NOT_NAMES:
                        parts.setdefault(fold(word), e.label_)
        if parts:
            generic = {fold(w) for w in locale_data(self.locale).generic_words}
            lower = {fold(w) for w in _PROSE_WORD.findall(doc_text) if w.islower()}
            for word, label in parts.items():
                if word not in generic and word not in lower:
                    strings.setdefault(word, label)
        mentions = [Mention.of(e) for e in ents]
        if not strings:
            return mentions
        text = folded_text(doc_text)
        taken = Coverage((m.start_char, m.end_char) for m in mentions)
        found = sorted(((start, end, label) for needle, label in strings.items()
                        for start, end in text.find(needle)), key=lambda f: (f[0], f[0] - f[1]))
        for start, end, label in found:  # leftmost first, then longest
            # A mention that overlaps a span already taken ("años 45 años" over the found
            # "45 años 45"): the rest of it goes too, or the surrogate beside it could
            # complete the string again.
            for piece_start, piece_end in taken.uncovered(start, end):
                piece = doc_text[piece_start:piece_end]
                lead, trail = len(piece) - len(piece.lstrip()), len(piece) - len(piece.rstrip())
                piece_start, piece_end = piece_start + lead, piece_end - trail
                if piece_start >= piece_end or not any(c.isalnum() for c in doc_text[piece_start:piece_end]):
                    continue
                taken.add(piece_start, piece_end)
                tokens = doc.char_span(piece_start, piece_end, alignment_mode="expand")
                mentions.append(Mention(piece_start, piece_end, label, doc_text[piece_start:piece_end],
                                        len(tokens) if tokens is not None else 1))
        return sorted(mentions, key=lambda m: m.start_char)

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text
        found_ents = self.with_age_units(doc)
        ents = self.with_other_mentions(doc, found_ents, text) if self.propagate else [Mention.of(e) for e in found_ents]
        found = {(e.start_char, e.end_char) for e in found_ents}
        from_rules = set()
        if self.rules_key in doc.spans:
            from_rules = {(s.start_char, s.end_char) for s in doc.spans[self.rules_key]}
        surrogates: Optional[Surrogates] = None
        spans: List[Dict] = []
        for ent in ents:
            label, original = ent.label_, ent.text
            kind = self.kind_of(ent)
            if kind in ("keep", "mask"):
                treatment = kind
            elif (kind, self._mode) == ("redact", "pseudonymize"):
                treatment = self.no_surrogate
            else:
                treatment = self._mode
            if ent.n_tokens > self.max_kept_tokens and treatment == "keep":
                treatment = "redact"
            record = {
                "start": ent.start_char, "end": ent.end_char, "label": label, "kind": kind,
                "source": "rules" if (ent.start_char, ent.end_char) in from_rules
                else "ner" if (ent.start_char, ent.end_char) in found else "propagated",
            }
            if treatment == "pseudonymize":
                if surrogates is None:
                    surrogates = self._surrogates(doc, text, ents)
                try:
                    new = surrogates.get(kind, original)
                    if self._holds_original(kind, original, new, surrogates):
                        raise SurrogateLeak()
                except Exception as err:  # never fail the note: that value is redacted
                    self._fall_back(record, type(err).__name__)
                    new = record["replacement"]
            elif treatment == "redact":
                new = self.redact_template.format(label=label, kind=kind)
            elif treatment == "mask":
                new = "".join(c if c.isspace() else self.mask_char for c in original)
            else:
                new = original
            record["replacement"] = new
            spans.append(record)
        out = self._assemble(text, spans)
        if spans:
            out = self._redact_coincidences(text, spans, ents, out)
        doc._.deidentified = out
        doc._.deid_spans = spans
        return doc

    def _fall_back(self, record: Dict, reason: str) -> None:
        """Redact the span of `record` instead; the reason is an exception's type, never its
        message (which may hold the text)."""
        record.update(replacement=self.redact_template.format(label=record["label"], kind=record["kind"]),
                      fallback="redact", fallback_reason=reason)

    @staticmethod
    def _assemble(text: str, spans: Sequence[Dict]) -> str:
        """The output text; sets each record's out_start and out_end."""
        pieces: List[str] = []
        pos = out_len = 0
        for record in spans:
            pieces.append(text[pos : record["start"]])
            out_len += record["start"] - pos
            pieces.append(record["replacement"])
            record["out_start"], record["out_end"] = out_len, out_len + len(record["replacement"])
            out_len += len(record["replacement"])
            pos = record["end"]
        pieces.append(text[pos:])
        return "".join(pieces)

    def _redact_coincidences(self, text: str, spans: List[Dict], ents: Sequence[Mention], out: str) -> str:
        """A replacement may complete one of the note's found strings with the text beside it:
        a drawn date "01/10/2018" after an unchanged "/01/0001" gives "/01/000101" again, and
        a placeholder after a mention glued to the replaced text ("ǅA:0:") makes it a word.
        The surrogate is redacted, or the unchanged rest of the mention is, until no found
        string of 4+ characters is in the output but where it is kept by design (a span left
        as it was, a placeholder, a mask). `spans` is changed in place, kept sorted."""
        strings = {e.text: e.label_ for e in ents
                   if len(e.text) >= 4 and any(c.isalnum() for c in e.text) and self.kind_of(e) != "keep"}
        for _ in range(3):
            folded = folded_text(out)
            bad, pieces = set(), []
            out_starts = [r["out_start"] for r in spans]  # both sorted: the records are in order
            out_ends = [r["out_end"] for r in spans]
            for string, label in strings.items():
                for start, end in folded.find(string):
                    touched = range(bisect.bisect_right(out_ends, start), bisect.bisect_left(out_starts, end))
                    drawn = [i for i in touched if self._is_surrogate(text, spans[i])]
                    bad.update(drawn)  # inside or beside a drawn surrogate: that surrogate made it
                    if not drawn and self.propagate:  # other mentions are replaced: this one too
                        outside = _uncovered(start, end, [(spans[i]["out_start"], spans[i]["out_end"]) for i in touched])
                        pieces.extend((a, b, label) for a, b in outside if any(c.isalnum() for c in out[a:b]))
            if not bad and not pieces:
                break
            for i in bad:
                self._fall_back(spans[i], "SurrogateLeak")
            for out_start, out_end, label in pieces:
                start = self._input_offset(out_start, spans, out_starts)
                end = start + out_end - out_start
                if any(r["start"] < end and start < r["end"] for r in spans):
                    continue
                record = {"start": start, "end": end, "label": label, "kind": self.kind(label), "source": "propagated"}
                self._fall_back(record, "Coincidence")
                spans.append(record)
            spans.sort(key=lambda r: r["start"])
            out = self._assemble(text, spans)
        return out

    @staticmethod
    def _input_offset(pos: int, spans: Sequence[Dict], out_starts: Sequence[int]) -> int:
        """Input offset of output offset `pos`, outside every replacement (`out_starts`: the
        records' output starts, sorted)."""
        i = bisect.bisect_right(out_starts, pos) - 1
        return pos if i < 0 else pos + spans[i]["end"] - spans[i]["out_end"]

    def _is_surrogate(self, text: str, record: Dict) -> bool:
        """Whether a record's replacement was drawn (not kept, redacted or masked)."""
        return (self._mode == "pseudonymize" and "fallback" not in record
                and record["kind"] not in ("keep", "mask", "redact")
                and record["replacement"] != text[record["start"]:record["end"]])

    def _surrogates(self, doc: Doc, text: str, ents: Sequence[Mention]) -> Surrogates:
        """The document's Surrogates: seeded from `seed` and the text, or keyed (see set_key)."""
        originals = [(self.kind_of(e), e.text) for e in ents]
        if self._key is None:
            rng, group = random.Random(document_seed(self.seed, text)), ""
        else:
            rng = random.Random(0)  # every keyed draw reseeds it (Surrogates._scope)
            given = doc._.deid_group
            group = f"group\x1f{given}" if given is not None else f"text\x1f{text}"
        return Surrogates(locale_data(self.locale), rng, originals, self.max_date_shift, self.max_age_shift,
                          self.avoid_strings, key=None if self._key is None else self._key.value, group=group)

    def _holds_original(self, kind: str, original: str, new: str, surrogates: Surrogates) -> bool:
        """Whether a surrogate still holds its original as a word, in any case or accent form
        ("0 meses" has no age to move, a name of particles only has nothing drawn), or another
        of the note's originals that its draws could not avoid (the "2018" of a name span
        "3 maj 2018" where "2018" is an age). Dates and ages are exempt when the config asks
        not to move them (max shift 0)."""
        if (kind == "date" and self.max_date_shift <= 0) or (kind == "age" and self.max_age_shift <= 0):
            return False
        return (any(c.isalnum() for c in original) and holds_word(new, original)) or surrogates.leaks(new)


@Language.factory(
    "deid_transform",
    assigns=["doc._.deidentified", "doc._.deid_spans"],
    requires=["doc.ents"],
    default_config={
        "mode": "pseudonymize",
        "mask_char": "*",
        "preset": "auto",
        "label_map": {},
        "default_kind": "redact",
        "seed": 0,
        "locale": None,
        "redact_template": "[{label}]",
        "max_date_shift": 365,
        "max_age_shift": 2,
        "rules_key": "deid_rules",
        "max_kept_tokens": 3,
        "propagate": True,
        "no_surrogate": "redact",
    },
)
def make_deid_transform(nlp: Language, name: str, mode: str, mask_char: str, preset: str,
                        label_map: Dict[str, str], default_kind: str, seed: int,
                        locale: Optional[str], redact_template: str, max_date_shift: int,
                        max_age_shift: int, rules_key: str, max_kept_tokens: int,
                        propagate: bool, no_surrogate: str) -> DeidTransform:
    """De-identify `doc.ents` (see the module docstring).

    mode: redact | mask | pseudonymize. preset: meddocan | swedish_ner | stockholm_epr | auto
    (their union); label_map: label -> kind overrides on top of the preset (kinds: KINDS);
    labels in neither get `default_kind`. locale: Faker locale, default from nlp.lang.
    """
    return DeidTransform(name, nlp.lang, mode=mode, mask_char=mask_char, preset=preset,
                         label_map=label_map, default_kind=default_kind, seed=seed, locale=locale,
                         redact_template=redact_template, max_date_shift=max_date_shift,
                         max_age_shift=max_age_shift, rules_key=rules_key,
                         max_kept_tokens=max_kept_tokens, propagate=propagate, no_surrogate=no_surrogate)
