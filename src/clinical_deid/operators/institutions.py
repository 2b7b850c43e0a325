"""Institutions and work: hospitals and health centres, organisations, professions.

A hospital's type stays and its place gets the surrogate of that place ("Hospital
Universitario de Getafe" -> "... de <the surrogate of Getafe>"), so it agrees with the town
named elsewhere in the note; otherwise a name is drawn from the language's templates
(``hospital_templates`` in ``clinical_deid/lang/<lang>.json``).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, List

from ..folding import WORD
from ..vocabulary import COMPANY_SUFFIX, ORGANISATION_HEAD, PLACE_TAIL
from .base import Operator, random_digits_like

if TYPE_CHECKING:
    from ..surrogates import Surrogates


def _hospital_templates(text: str, surrogates: "Surrogates") -> List[str]:
    """The templates for the kind of institution `text` names, in its language (Spanish:
    a health centre, a clinic or a hospital; Swedish: a vårdcentral or a hospital)."""
    templates = surrogates.data.words.get("hospital_templates") or {
        "hospital": ["{city} Hospital", "{last} Medical Center"]}
    folded, lang = text.casefold(), surrogates.data.lang
    if lang == "sv" and "vårdcentral" in folded:
        return templates["health_centre"]
    if lang == "es" and re.search(r"centro de salud|\bc\.\s?s\.|ambulatorio|consultorio", folded):
        return templates["health_centre"]
    if lang == "es" and folded.startswith("clínica"):
        return templates["clinic"]
    return templates["hospital"]


class Hospital(Operator):
    """A hospital, health centre or ward (see the module docstring)."""

    name = "hospital"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        data, rng, folded = surrogates.data, surrogates.rng, text.casefold()
        if data.lang == "sv" and "vårdcentral" not in folded and re.match(r"avd", folded):  # a ward: "avd 12"
            if re.search(r"\d", text):
                return surrogates.fresh(lambda: random_digits_like(text, rng))
            return "avdelning " + str(rng.randint(1, 99))
        templates = _hospital_templates(text, surrogates)
        place = PLACE_TAIL[data.lang].match(text) if data.lang in PLACE_TAIL else None
        if place and not all(w.casefold() in data.generic_words for w in WORD.findall(place.group(1))):
            place = None  # "Hospital Sant Joan de Reus": the head names the hospital too
        if place and not templates[0].startswith("Centro"):
            # "Hospital Universitario de Getafe": the type stays, the place gets the surrogate
            # of that place, so it agrees with the town named elsewhere in the note.
            return place.group(1) + surrogates.get("city", place.group(2))
        template = templates[int(rng.random() * len(templates))]
        return surrogates.fresh(lambda: template.format(city=data.fake.city(), last=data.last.draw(rng)))


class Organisation(Operator):
    """A Spanish public body keeps its head ("Ayuntamiento de Zaragoza" -> "Ayuntamiento de
    Lugo"); any other organisation becomes a drawn company name without its legal suffix."""

    name = "organisation"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        fake = surrogates.data.fake
        head = ORGANISATION_HEAD.match(text) if surrogates.data.lang == "es" else None
        if head:
            return surrogates.fresh(lambda: f"{head.group(1)} de {fake.city()}")
        return surrogates.fresh(lambda: COMPANY_SUFFIX.sub("", fake.company()).strip(" ,"))


class Profession(Operator):
    """A job title of three words at most, drawn from Faker's locale."""

    name = "profession"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        fake = surrogates.data.fake

        def draw() -> str:
            for _ in range(20):
                job = fake.job().split("(")[0].split(",")[0].strip()
                if len(job.split()) <= 3:
                    return job
            return job
        return surrogates.fresh(draw)
