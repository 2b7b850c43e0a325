"""Word sets and regexes built from the language data (``clinical_deid/lang/*.json``).

Kinship words, age units, name particles and titles are recognised in any language the
runtime has data for (a Swedish "mor" in a Spanish note is still no name); street types,
organisation heads and company suffixes are the regexes that keep a surrogate's form
("Avda. de ...", "Ayuntamiento de ...") and drop what names no one.
"""
from __future__ import annotations

import re
from typing import Dict, Pattern

from .lang import LANGUAGES, in_order, load as load_language, union

# Kinship words: a FAMILIARES span made of these (and particles) names no one.
RELATIONS = union("relations")
# Units after an age ("8 días", "3 månader").
AGE_UNITS = union("age_units")
NAME_PARTICLES = union("name_particles")
TITLES = union("titles")
# Words of a name span that are no name part.
NOT_NAMES = NAME_PARTICLES | TITLES
# Words of a street's number part: floor, door, "s/n".
STREET_NUMBER_WORDS = union("street_number_words")

# Street types as written before a street's name ("C/ ", "Avda. de "; "Storgatan" has none).
STREET_TYPE = re.compile(
    r"(?i)\s*(?:" + "|".join(in_order("street_type_patterns")) + r")(?:\s+|(?<=[/.]))"
    r"(?:(?:" + "|".join(in_order("street_name_articles")) + r")\s+)?"
)
# A street's name, then the rest: its number, "s/n", floor and door.
STREET_TAIL = re.compile(r"(.*?)(?=[\s,]*(?:\d|s/n|S/N|n[º°o]\.?\s|núm|$))", re.S)
# A door letter, or the "s/n" (sin número) whose letters stay.
LONE_LETTER = re.compile(r"([sS]/[nN])|(?<![^\W\d_])[A-Za-z](?![^\W\d_])")
ORGANISATION_HEAD = re.compile(r"(?i)(" + "|".join(in_order("organisation_heads")) + r")\b")
COMPANY_SUFFIX = re.compile(r"\s+(" + "|".join(in_order("company_suffix_patterns")) + r")$")
# A word of running text: not a piece of an e-mail address, URL or path ("osakidetza.net").
PROSE_WORD = re.compile(r"(?<![\w.@/:-])[^\W\d_]+(?![\w@/-]|\.\w)")

_CAPITALISED = r"[A-ZÁÉÍÓÚÑÅÄÖ][^\W\d_]+"


def _place_tail(prepositions: list, joiners: list) -> Pattern[str]:
    """The place at the end of an institution's name: "Hospital Clínico de Madrid",
    "Complejo ... de Santiago de Compostela", "Sjukhuset i Lund"."""
    preposition = prepositions[0] if len(prepositions) == 1 else "(?:" + "|".join(prepositions) + ")"
    joiner = r"(?:\s+(?:" + "|".join(joiners) + r")\s+|[ -])" if joiners else "[ -]"
    return re.compile(r"^(.*?\s" + preposition + r"\s+)(" + _CAPITALISED + r"(?:" + joiner + _CAPITALISED + r")*)$")


PLACE_TAIL: Dict[str, Pattern[str]] = {
    code: _place_tail(load_language(code)["place_prepositions"], load_language(code)["place_name_joiners"])
    for code in LANGUAGES if "place_prepositions" in load_language(code)
}
