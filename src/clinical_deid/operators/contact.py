"""Contact details: phone numbers, e-mail addresses, URLs and IP addresses."""
from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ..phones import phone_number, same_type
from .base import Operator, random_digits_like

if TYPE_CHECKING:
    from ..surrogates import Surrogates


def _ascii_letters(text: str) -> str:
    """`text` as lower-case ASCII letters only ("Núñez" -> "nunez"), for addresses."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", text.lower())


_PHONE_TRIES = 50  # draws until one is a valid number of the original's type


class Phone(Operator):
    """The country code, the trunk 0 and the first digit of the number (mobile or landline)
    are kept; every other digit is drawn, in place, so separators, prefix and area-code
    slashes stay. Where phonenumbers reads the original as a valid number (without a prefix:
    of the pipeline's country), the draw is repeated until it is a valid number of the same
    country and type."""

    name = "phone"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        m = re.match(r"\s*(?:\+|00)(\d{2})[\s.-]*(?:\(0\)\s*)?", text)
        keep = 2 if m else 0
        rest = text[m.end():] if m else text
        keep += 2 if rest.lstrip("(").startswith("0") else 1
        region = surrogates.data.country
        original = phone_number(text, region)

        def draw() -> str:
            candidate = random_digits_like(text, surrogates.rng, keep=keep)
            for _ in range(_PHONE_TRIES if original is not None else 0):
                if same_type(candidate, original, region):  # type: ignore[arg-type]
                    break
                candidate = random_digits_like(text, surrogates.rng, keep=keep)
            return candidate
        return surrogates.fresh(draw)


class Email(Operator):
    """A drawn person's address at one of the locale's free e-mail domains."""

    name = "email"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        data, rng = surrogates.data, surrogates.rng
        first = _ascii_letters(data.first_female.draw(rng) if rng.random() < 0.5 else data.first_male.draw(rng))
        last = _ascii_letters(data.last.draw(rng))
        user = [f"{first}.{last}", f"{first[:1]}{last}", f"{first}{rng.randint(1, 99)}"][rng.randint(0, 2)]
        return surrogates.fresh(lambda: f"{user}@{data.fake.free_email_domain()}")


class Url(Operator):
    """The original's scheme and "www." kept, a drawn surname as the site, the locale's TLD."""

    name = "url"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        data = surrogates.data
        scheme = re.match(r"(?i)(https?://)?(www\.)?", text)
        word = _ascii_letters(data.last.draw(surrogates.rng)) or "clinica"
        return surrogates.fresh(lambda: f"{scheme.group(1) or ''}{scheme.group(2) or ''}{word}.{data.tld}")


class Ip(Operator):
    """A drawn IPv6 address for an IPv6 one, else a drawn IPv4 address (first byte 1-223)."""

    name = "ip"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        rng = surrogates.rng
        if ":" in text:
            return ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))
        return ".".join(str(rng.randint(1 if i == 0 else 0, 223 if i == 0 else 255)) for i in range(4))
