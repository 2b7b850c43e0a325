"""Places: cities, territories (provinces, regions, postcodes), countries and streets.

A street keeps its form: its street type as written ("C/", "Avda. de"), a drawn street
name, and its number part with the digits drawn ("3, 2º A", "s/n").
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..folding import WORD, match_case
from ..vocabulary import LONE_LETTER, STREET_NUMBER_WORDS, STREET_TAIL, STREET_TYPE
from .base import Operator, random_digits_like, random_letter

if TYPE_CHECKING:
    from ..surrogates import Surrogates


class City(Operator):
    """A town drawn from Faker's locale."""

    name = "city"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        return surrogates.fresh(surrogates.data.fake.city)


class Territory(Operator):
    """A postcode (digits drawn; a Spanish one keeps a valid province), a region or state of
    the locale, else a town (the same surrogate as that town anywhere in the note)."""

    name = "territory"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        data, rng = surrogates.data, surrogates.rng
        folded = text.casefold()
        if re.fullmatch(r"[\d\s-]+", text):
            if data.lang == "es" and re.fullmatch(r"\d{5}", text):  # province 01-52 + 3 digits
                return f"{rng.randint(1, 52):02d}{rng.randint(0, 999):03d}"
            return random_digits_like(text, rng, keep=0)
        if folded in data.regions and hasattr(data.fake, "region"):
            return surrogates.fresh(data.fake.region)
        if folded in data.states and hasattr(data.fake, "state"):
            return surrogates.fresh(data.fake.state)
        return surrogates.get("city", text)  # the same town as a city or inside a hospital's name


class Country(Operator):
    """A country drawn from Faker's locale."""

    name = "country"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        return surrogates.fresh(surrogates.data.fake.country)


class Street(Operator):
    """The original's form kept: its street type as written ("C/", "Avda. de"), a drawn
    street name, and its number part with the digits drawn ("3, 2º A", "s/n")."""

    name = "street"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        data, rng = surrogates.data, surrogates.rng
        head = STREET_TYPE.match(text)
        head_text = head.group() if head else ""
        tail = text[STREET_TAIL.match(text, len(head_text)).end(1):]
        if any(len(w) > 2 and w.casefold() not in STREET_NUMBER_WORDS for w in WORD.findall(tail)):
            # More than a number, floor and door: a span that ran on over a town or more
            # text. None of it stays; a number does.
            head_text, tail = "", f" {rng.randint(1, 150)}" if re.search(r"\d", text) else ""

        def draw() -> str:
            name = data.fake.street_name()
            if head_text:  # the drawn name without its own street type
                name = name[len(m.group()):] if (m := STREET_TYPE.match(name)) else name
            # Digits drawn; single letters (door "B") drawn, but not those of "s/n".
            rest = LONE_LETTER.sub(lambda m: m.group() if m.group(1) else match_case(
                m.group(), random_letter(rng)), random_digits_like(tail, rng))
            return f"{head_text}{name}{rest}"

        return surrogates.fresh(draw)
