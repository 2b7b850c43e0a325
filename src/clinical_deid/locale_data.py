"""What surrogates are drawn from: one Faker per locale and its name lists, built once.

Faker keeps some lists as {name: weight}; `Pool` draws from either kind with the pipeline's
random stream (one `rng.random()` per unweighted draw, the same as before the split, so the
output stays the same for a seed or key).
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Dict, List, Optional

from faker import Faker

from .folding import WORD
from .lang import load as load_language


class Pool:
    """Elements with optional weights (Faker keeps some lists as {name: weight}); elements
    with a space are left out (a surrogate name part is one word)."""

    def __init__(self, elements: Any) -> None:
        if isinstance(elements, dict):
            items = [(k, w) for k, w in elements.items() if " " not in k]
            self.elements = [k for k, _ in items]
            self.cum_weights: Optional[List[float]] = list(itertools.accumulate(w for _, w in items))
        else:
            self.elements = [e for e in elements if " " not in e]
            self.cum_weights = None
        self.lookup = {e.casefold() for e in self.elements}

    def draw(self, rng: random.Random) -> str:
        """rng (random.Random): The stream to draw from. RETURNS (str): One element."""
        if self.cum_weights is None:
            return self.elements[int(rng.random() * len(self.elements))]
        return rng.choices(self.elements, cum_weights=self.cum_weights)[0]


class LocaleData:
    """A Faker of one locale plus its name lists and its language's data, built once per
    process."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.lang = locale.split("_")[0]
        # The country (ISO code) whose phone numbers and national IDs the surrogates follow.
        self.country = locale.split("_")[-1].upper()
        # The language's word lists and templates (clinical_deid/lang/<lang>.json).
        self.words: Dict[str, Any] = load_language(self.lang)
        self.fake = Faker(locale)
        person = next(p for p in self.fake.get_providers() if hasattr(p, "last_names"))
        female = getattr(person, "first_names_female", None) or person.first_names
        male = getattr(person, "first_names_male", None) or person.first_names
        self.first_female = Pool(female)
        self.first_male = Pool(male)
        self.last = Pool(person.last_names)
        address = next((p for p in self.fake.get_providers() if hasattr(p, "street_name")), None)
        self.states = {s.casefold() for s in getattr(address, "states", ())}
        self.regions = {s.casefold() for s in getattr(address, "regions", ())}
        # Words that say what a place is, not which: shared by originals and surrogates.
        self.generic_words = set(self.words.get("generic_place_words", ())) | {
            w.casefold() for prefix in getattr(address, "street_prefixes", ()) for w in WORD.findall(prefix)
        }
        self.tld = self.words.get("top_level_domain", self.locale.split("_")[-1].lower())


_LOCALE_DATA: Dict[str, LocaleData] = {}


def locale_data(locale: str) -> LocaleData:
    """locale (str): A Faker locale ("es_ES"). RETURNS (LocaleData): Its data, built once."""
    if locale not in _LOCALE_DATA:
        _LOCALE_DATA[locale] = LocaleData(locale)
    return _LOCALE_DATA[locale]
