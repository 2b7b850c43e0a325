"""Phone numbers: where they are in a note (the PHONE and FAX rules of ``deid_rules``) and
whether a drawn number is a valid one of the original's country and type (the ``phone``
surrogate).

Two finders: this module's patterns, written for Spanish and Swedish formats, and
phonenumbers' PhoneNumberMatcher (Google's libphonenumber data: the valid numbers of the
pipeline's country, and of any country with a prefix).
"""
from __future__ import annotations

import re
from typing import Iterator, Optional, Tuple

import phonenumbers
from phonenumbers import PhoneNumberType

from .dates import NUMERIC_DATE, is_numeric_date

# A run of digit groups, optionally with a country code; validated (and trimmed) below.
_PHONE = re.compile(r"(?<![\w+/.,-])(?:(?:\+|00)\d{2}[ .-]?(?:\(0\)[ ]?)?)?\(?\d{1,4}\)?(?:[ .-]?\d{1,4}){1,6}(?![\w/])")

# How Spanish numbers are grouped ("612 345 678", "91 123 45 67", "612 34 56 78"); other
# groupings of nine digits are IDs (MEDDOCAN: "NASS: 89-89532-56", "NºCol: 06 06 98234").
_ES_GROUPS = {(9,), (3, 3, 3), (3, 2, 2, 2), (2, 3, 2, 2), (3, 6)}


def _groups(text: str) -> Tuple[int, ...]:
    return tuple(len(g) for g in re.split(r"[\s.()-]+", text.strip()) if g)


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    compact = re.sub(r"[\s.()-]", "", text)
    if compact.startswith("+34") or compact.startswith("0034"):
        national = re.sub(r"^\s*(\+|00)34", "", text)
        return len(re.sub(r"\D", "", national)) == 9 and compact[-9] in "6789" and _groups(national) in _ES_GROUPS
    if compact.startswith("+46") or compact.startswith("0046"):
        national = re.sub(r"^\s*(\+|00)46[ .-]?(\(0\))?", "", text)
        n = len(re.sub(r"\D", "", national))
        return 7 <= n <= 9 and not national.strip().startswith("0") and _se_groups(_groups(national)[1:])
    if compact.startswith("+"):
        return 8 <= len(digits) <= 13
    if digits.startswith("0"):  # Swedish: 0 + area code, then 5 to 8 digits
        groups = _groups(text)
        return (8 <= len(digits) <= 10 and digits[1] != "0" and len(groups) > 1
                and 2 <= groups[0] <= 4 and _se_groups(groups[1:]))
    return len(digits) == 9 and digits[0] in "6789" and _groups(text) in _ES_GROUPS


def _se_groups(rest: Tuple[int, ...]) -> bool:
    """After the area code: one block of 5 to 8 digits, or groups of 2 and 3 digits."""
    return (len(rest) == 1 and 5 <= rest[0] <= 8) or (len(rest) > 1 and all(g in (2, 3) for g in rest))


# An ID's label right before a number: "NASS: 07 24675873 03", "Episodio: 632632225".
# Other languages: "Fallnummer: 030 1234567", "fnr. 15076500565".
_ID_CONTEXT = re.compile(
    r"(?i)\b(?:nass|nhc|nif|dni|nie|n[ºo°]\s?col|colegiado|episodio|historia|cip|tsi|ss|"
    r"n[ºo°]|número de|id|personnummer|pnr|fnr|f[øo]dselsnummer|cpr|hetu|bsn|ssn|mrn|svnr|idnr|"
    r"fallnummer|patientennummer|versichertennummer|journalnummer|journalnr)\.?\s*:?\s*$"
)


def _phones(text: str) -> Iterator[Tuple[int, int]]:
    for m in _PHONE.finditer(text):
        s, e = m.span()
        if NUMERIC_DATE.fullmatch(m.group()) and is_numeric_date(m.group()):  # "01.03.2019"
            continue
        if _ID_CONTEXT.search(text[max(0, s - 25) : s]):
            continue
        if _is_phone(m.group()):
            yield s, e


def _library_phones(text: str, region: Optional[str]) -> Iterator[Tuple[int, int]]:
    """Valid numbers found by phonenumbers' PhoneNumberMatcher (numbers without a country
    prefix are read as the region's), without dates and numbers after an ID's label."""
    for match in phonenumbers.PhoneNumberMatcher(text, region or "ZZ", leniency=phonenumbers.Leniency.VALID):
        s, e = match.start, match.end
        if NUMERIC_DATE.fullmatch(match.raw_string) and is_numeric_date(match.raw_string):
            continue
        if not _ID_CONTEXT.search(text[max(0, s - 25) : s]):
            yield s, e


def find_phones(text: str, finder: str = "regex", region: Optional[str] = None) -> Iterator[Tuple[int, int]]:
    """(start, end) of the phone numbers of `text`: no dates, no numbers after an ID's label.

    text (str): A note. finder (str): regex (Spanish and Swedish formats) | phonenumbers.
    region (Optional[str]): The country whose numbers need no prefix ("DE"; phonenumbers only).
    RETURNS (Iterator[Tuple[int, int]]): The numbers' offsets.
    """
    return _library_phones(text, region) if finder == "phonenumbers" else _phones(text)


_EITHER = PhoneNumberType.FIXED_LINE_OR_MOBILE


def phone_number(text: str, region: str) -> Optional[phonenumbers.PhoneNumber]:
    """`text` as a valid phone number (without a country prefix: of `region`), else None.

    text (str): A phone number as written. region (str): The pipeline's country ("DE").
    RETURNS (Optional[PhoneNumber]): The parsed number, or None if it is no valid number.
    """
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def same_type(candidate: str, original: phonenumbers.PhoneNumber, region: str) -> bool:
    """Whether `candidate` is a valid number of the original's country and type (mobile,
    landline, ...; "fixed line or mobile" goes with either)."""
    number = phone_number(candidate, region)
    if number is None or number.country_code != original.country_code:
        return False
    types = {phonenumbers.number_type(number), phonenumbers.number_type(original)}
    return len(types) == 1 or (_EITHER in types and types <= {_EITHER, PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE})
