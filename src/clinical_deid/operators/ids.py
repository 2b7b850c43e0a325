"""Identifiers: Spanish DNI and NIE, Swedish personnummer, other countries' national ID
numbers, and any other ID.

DNI/NIE come out with a valid check letter and a personnummer with a valid Luhn digit,
computed by python-stdnum; the original's separators, case and length are kept. A national
ID of the pipeline's country (NATIONAL_IDS: Norwegian fødselsnummer, Danish CPR, Finnish
HETU, German IdNr, French NIR, Italian codice fiscale, ...) that python-stdnum validates comes
out valid too, in the same format (birth-date heads moved by the document's shift). Any other
ID keeps its letter prefixes ("NHC", "COL") and has its digits and single letters drawn.
"""
from __future__ import annotations

import re
import string
from datetime import date, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, List, Optional

from stdnum import luhn
from stdnum.exceptions import InvalidChecksum
from stdnum.es import dni, nie

from ..folding import match_case
from ..national_ids import NATIONAL_IDS, national_id_module
from .base import Operator, random_digits_like, random_letter

if TYPE_CHECKING:
    from ..surrogates import Surrogates

_DNI_RE = re.compile(r"^(\d{1,2})(\.?)(\d{3})(\.?)(\d{3})([\s-]?)([A-Za-z])$")
_NIE_RE = re.compile(r"^([XYZxyz])([\s-]?)(\d{7})([\s-]?)([A-Za-z])$")
_PNR_RE = re.compile(r"^(\d{2})?(\d{2})(\d{2})(\d{2})([-+ ]?)(\d{3})(\d)$")
_LETTER_RUN = re.compile(r"[^\W\d_]+")

_DATED = {"stdnum." + name[:-1] for names in NATIONAL_IDS.values() for name in names if name.endswith("*")}
_DRAWS = 300  # base candidates tried before giving up (the check character is enumerated per base)


def _birth_head(digits: str, surrogates: "Surrogates") -> str:
    """DDMMYY of the original's birth date moved by the document's shift (a drawn date
    where the head is no date: D-numbers, day + 40)."""
    day, month, yy = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    try:
        born = date(1900 + yy if yy > date.today().year % 100 else 2000 + yy, month, day) + surrogates.shift
    except (ValueError, OverflowError):
        born = date(1930, 1, 1) + timedelta(days=surrogates.rng.randint(0, 80 * 365))
    return f"{born.day:02d}{born.month:02d}{born.year % 100:02d}"


def draw_national_id(module: ModuleType, text: str, surrogates: "Surrogates") -> Optional[str]:
    """A drawn ID that `module` validates, in the original's format: each letter and digit
    drawn as a letter or digit of the same case, separators kept, the last character (the
    check digit or letter) chosen to make it valid.

    module (ModuleType): The python-stdnum module that validates `text`.
    text (str): The original. surrogates (Surrogates): The document's state.
    RETURNS (Optional[str]): The drawn ID; None if no valid one was found.
    """
    rng = surrogates.rng
    positions = [i for i, c in enumerate(text) if c.isalnum()]
    digits = "".join(text[i] for i in positions)
    dated = module.__name__ in _DATED
    head = _birth_head(digits, surrogates) if dated and digits[:6].isdigit() else ""
    last = positions[-1]
    checks = string.digits if text[last].isdigit() else string.digits + string.ascii_uppercase
    for _ in range(_DRAWS):
        chars: List[str] = list(text)
        for n, i in enumerate(positions[:-1]):
            if n < len(head):
                chars[i] = head[n]
            elif text[i].isdigit():
                chars[i] = str(rng.randint(0, 9))
            else:
                chars[i] = match_case(text[i], random_letter(rng))
        if not _checksum_only(module, "".join(chars)):
            continue  # a drawn date or component is no valid one: no check character helps
        for check in checks:
            chars[last] = match_case(text[last], check)
            candidate = "".join(chars)
            if candidate != text and module.is_valid(candidate):
                return candidate
    return None


def _checksum_only(module: ModuleType, candidate: str) -> bool:
    """Whether `candidate` is valid or fails on its check character alone."""
    try:
        module.validate(candidate)
    except InvalidChecksum:
        return True
    except Exception:  # InvalidFormat, InvalidComponent, InvalidLength, ...
        return False
    return True


class NotAnId(Exception):
    """An ID span holding words, not an ID: redacted instead (see IdGeneric)."""


def _is_id_prefix(run: str) -> bool:
    """A letter run an ID may keep: a short code ("NHC", "Col", "Nº"), or a longer one in
    capitals ("NASS"), not a word of prose."""
    return len(run) <= 3 or (run.isupper() and len(run) <= 6)


def check_id_like(text: str) -> None:
    """Raise NotAnId if `text` has digits and a letter run that is no ID prefix: words ("raza
    caucásica de 21 años", a model's ID span run over prose) would be kept and carry the text
    through.

    text (str): The original.
    """
    if re.search(r"\d", text) and any(not _is_id_prefix(run) for run in _LETTER_RUN.findall(text)):
        raise NotAnId()


def draw_generic_id(text: str, surrogates: "Surrogates") -> str:
    """Letter runs of two or more are prefixes ("NHC", "COL"): kept, unless there is no
    digit to draw (then every letter is). Single letters and digits are drawn.

    text (str): The original. surrogates (Surrogates): The document's state.
    RETURNS (str): The drawn ID; NotAnId if `text` holds words (see check_id_like).
    """
    check_id_like(text)
    rng = surrogates.rng
    shortest_drawn = 1 if re.search(r"\d", text) else 10**6

    def draw() -> str:
        out = random_digits_like(text, rng)
        return _LETTER_RUN.sub(
            lambda m: m.group() if len(m.group()) > shortest_drawn else "".join(
                match_case(c, random_letter(rng)) for c in m.group()), out
        )
    return surrogates.fresh(draw)


class IdEsDni(Operator):
    """A Spanish DNI ("12.345.678-Z", "1.234.567-L") or NIE ("X-1234567-L") with a drawn
    number and its check letter; anything else as an ID."""

    name = "id_es_dni"

    def validate(self, text: str) -> None:
        if not (_DNI_RE.match(text) or _NIE_RE.match(text)):
            check_id_like(text)

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        rng = surrogates.rng
        m = _DNI_RE.match(text)
        if m:
            number = rng.randint(10_000_000, 99_999_999)
            digits = f"{number:08d}"
            if len(m.group(1)) == 1:  # "1.234.567-L": seven digits, keep the length
                number = rng.randint(1_000_000, 9_999_999)
                digits = str(number)
            head = digits[: len(digits) - 6]
            letter = match_case(m.group(7), dni.calc_check_digit(str(number)))
            return f"{head}{m.group(2)}{digits[-6:-3]}{m.group(4)}{digits[-3:]}{m.group(6)}{letter}"
        m = _NIE_RE.match(text)
        if m:
            prefix = "XYZ"[rng.randint(0, 2)]
            body = f"{rng.randint(0, 9_999_999):07d}"
            letter = nie.calc_check_digit(prefix + body)
            return f"{match_case(m.group(1), prefix)}{m.group(2)}{body}{m.group(4)}{match_case(m.group(5), letter)}"
        return draw_generic_id(text, surrogates)


class IdSePersonnummer(Operator):
    """A Swedish personnummer (or samordningsnummer: day + 60) born on the shifted date,
    with a drawn serial of the same sex and its Luhn digit; anything else as an ID."""

    name = "id_se_personnummer"

    def validate(self, text: str) -> None:
        if not _PNR_RE.match(text):
            check_id_like(text)

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        m = _PNR_RE.match(text)
        if not m:
            return draw_generic_id(text, surrogates)
        rng = surrogates.rng
        century, yy, mm, dd, sep, serial, _ = m.groups()
        coordination = int(dd) > 60  # samordningsnummer: day + 60
        try:
            year = int(century) * 100 + int(yy) if century else 1900 + int(yy) + (100 if int(yy) <= 25 and sep != "+" else 0)
            born = date(year, int(mm), int(dd) - (60 if coordination else 0)) + surrogates.shift
        except ValueError:
            born = date(1930, 1, 1) + timedelta(days=rng.randint(0, 80 * 365))
        # The third serial digit is odd for men and even for women: keep its parity.
        parity = int(serial[2]) % 2
        new_serial = f"{rng.randint(0, 99):02d}{rng.randrange(parity, 10, 2)}"
        day = born.day + (60 if coordination else 0)
        body = f"{born.year % 100:02d}{born.month:02d}{day:02d}{new_serial}"
        prefix = f"{born.year // 100}" if century else ""
        return f"{prefix}{body[:6]}{sep}{body[6:]}{luhn.calc_check_digit(body)}"


class IdGeneric(Operator):
    """Any ID: a valid national ID of the pipeline's country is drawn valid (see
    draw_national_id); a DNI, NIE or personnummer shape goes to its own operator; otherwise
    letter prefixes stay and digits and single letters are drawn (see draw_generic_id)."""

    name = "id_generic"

    def validate(self, text: str) -> None:
        if text.strip() != text or not (_DNI_RE.match(text) or _NIE_RE.match(text) or _PNR_RE.match(text)):
            check_id_like(text)

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        module = national_id_module(text, surrogates.data.country) if text.strip() == text else None
        if module is not None:
            drawn = surrogates.fresh(lambda: draw_national_id(module, text, surrogates) or "")
            if drawn:
                return drawn
        if text.strip() == text:
            if _DNI_RE.match(text) or _NIE_RE.match(text):
                return IdEsDni().operate(text, surrogates)
            if _PNR_RE.match(text):
                return IdSePersonnummer().operate(text, surrogates)
        return draw_generic_id(text, surrogates)
