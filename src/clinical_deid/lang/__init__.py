"""Language data of the de-identification runtime: one JSON file per language.

Word lists (month names, kinship words, age units, name particles, titles, street types,
generic place words, organisation heads, company suffixes) and surrogate templates live in
``<lang>.json`` beside this file, so that adding a language is adding data, not code. ``xx``
holds what belongs to no one language (name particles such as "van", "von"). The modules
that match text build their regexes from these lists.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, FrozenSet

# The languages whose month names every pipeline knows (dates.py), in order of precedence
# where two share a word (a month word of Spanish wins over the same word of Swedish).
LANGUAGES = ("es", "sv", "en", "xx")
# The languages with data: their word lists are recognised whatever the pipeline's language
# (union, in_order). German is not in LANGUAGES: its month names ("Mai", "März") are months
# only in a German pipeline (dates.py takes them from Babel for the pipeline's language).
WORD_LANGUAGES = ("es", "sv", "en", "de", "xx")


@functools.lru_cache(maxsize=None)
@functools.lru_cache(maxsize=None)
def load(lang: str) -> Dict[str, Any]:
    """The data of one language, read once (callers only read it: do not change the dict).

    lang (str): A language code of WORD_LANGUAGES.
    RETURNS (Dict[str, Any]): Its lists and templates by name; {} for a language without data.
    """
    path = Path(__file__).parent / f"{lang}.json"
    if lang not in WORD_LANGUAGES or not path.exists():
        return {}
    with path.open(encoding="utf8") as file:
        return json.load(file)


@functools.lru_cache(maxsize=None)
def union(field: str) -> FrozenSet[str]:
    """One word list of every language together (kinship words, age units, particles and
    titles are recognised whatever the pipeline's language).

    field (str): The list's name in the JSON files.
    RETURNS (FrozenSet[str]): The words of that list in any language.
    """
    return frozenset(word for lang in WORD_LANGUAGES for word in load(lang).get(field, ()))


def in_order(field: str) -> list:
    """One list of every language, concatenated in the order of WORD_LANGUAGES (for regexes,
    whose alternatives are tried in order).

    field (str): The list's name in the JSON files.
    RETURNS (list): The entries of that list, language after language.
    """
    return [entry for lang in WORD_LANGUAGES for entry in load(lang).get(field, ())]
