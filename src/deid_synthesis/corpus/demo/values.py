"""What the demo's languages share: their data files, template filling and small value helpers.

Each language keeps its word lists, name patterns and note templates in `<lang>.json` beside
this module; `es.py` and `sv.py` hold only the drawing. The order of the draws from the
seeded generators is what fixes the corpus for a seed, so a helper here never draws more
than the value it returns.
"""
from __future__ import annotations

import functools
import random
import re
import unicodedata
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import srsly
from faker import Faker

# A segment is a piece of text with an optional label (None = plain text).
Segment = Tuple[str, Optional[str]]

SLOT = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=None)
def language_data(lang: str) -> Dict[str, Any]:
    """The demo data of one language (`<lang>.json`), with the header fields as tuples.

    lang (str): "es" or "sv".
    RETURNS (Dict[str, Any]): word lists, patterns and templates by name.
    """
    data = srsly.read_json(Path(__file__).parent / f"{lang}.json")
    data["header_fields"] = [tuple(field) for field in data["header_fields"]]
    return data


def render_template(template: str, slots: Dict[str, List[Segment]]) -> List[Segment]:
    """Fill the `{slot}` markers of a note template with segment lists.

    template (str): text with `{slot}` markers.
    slots (Dict[str, List[Segment]]): the segments (text, label) of each slot.
    RETURNS (List[Segment]): the template's text as segments, labels kept.
    """
    out: List[Segment] = []
    pos = 0
    for match in SLOT.finditer(template):
        if match.start() > pos:
            out.append((template[pos : match.start()], None))
        out.extend(slots[match.group(1)])
        pos = match.end()
    if pos < len(template):
        out.append((template[pos:], None))
    return out


def fill_pattern(pattern: str, values: Dict[str, Callable[[], str]]) -> str:
    """Fill a name pattern ("Hospital San {first_name_male}"): each slot's value is drawn only
    when the pattern names it, left to right, as the f-strings it replaces drew them.

    pattern (str): text with `{slot}` markers.
    values (Dict[str, Callable[[], str]]): a function drawing each slot's value.
    RETURNS (str): the filled pattern.
    """
    return SLOT.sub(lambda match: values[match.group(1)](), pattern)


def words_of(segments: Iterable[Segment]) -> int:
    """Whitespace-separated words of some segments (the demo's own length measure)."""
    return len("".join(text for text, _ in segments).split())


def ends_safely(value: str) -> bool:
    """True when a '.' right after `value` is split off by spaCy's tokenizer.

    spaCy keeps "B." / "H." (single capital + period) and "12345678Z." (digits
    followed by a letter) together, so fields ending like that get no period.
    """
    return bool(re.search(r"(\d|[a-záéíóúñüåäöé]{2,}|[A-ZÁÉÍÓÚÑÅÄÖ][a-záéíóúñüåäö]+)$", value)) and not re.search(
        r"\d[A-Za-z]$", value
    )


def ascii_letters(value: str) -> str:
    """The lower-case ASCII letters of VALUE, marks dropped ("Agüero" -> "aguero")."""
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", value.lower())


def random_date(rng: random.Random, start: date, end: date) -> date:
    """A date from START to END inclusive."""
    return start + timedelta(days=rng.randint(0, (end - start).days))


def short_job(fake: Faker, max_words: int = 3) -> str:
    """A Faker job title of at most MAX_WORDS words, without its parenthesised part."""
    for _ in range(30):
        job = fake.job().split("(")[0].strip()
        if 0 < len(job.split()) <= max_words:
            return job
    return "administrativo"


def clean_company(name: str) -> str:
    """Drop legal-form suffixes ("S.L.", "AB", ...) from a Faker company name."""
    name = re.sub(r"\s+(S\.?L\.?|S\.?A\.?|S\.?Coop\.?|S\.?L\.?L\.?|S\.?L\.?U\.?)$", "", name)
    name = re.sub(r"\s+(AB|HB|KB)$", "", name)
    return name.strip(" ,")


def relatives_for_age(data: Dict[str, Any], age: int) -> List[str]:
    """Relations that make sense for a patient of AGE (no grandchildren at 30).

    data (Dict[str, Any]): the language's data: "relatives" (relation -> gender of the
        relative, in the order drawn from) and its "grandchildren", "children", "parents".
    age (int): the patient's age.
    RETURNS (List[str]): the relation words that fit.
    """
    too_young = set(data["grandchildren"]) if age < 60 else set()
    too_young |= set(data["children"]) if age < 35 else set()
    too_old = set(data["parents"]) if age > 70 else set()
    return [relation for relation in data["relatives"] if relation not in too_young | too_old]


def pick_header_fields(fields: List[Tuple[str, str]], core: Iterable[str]) -> Tuple[list, list]:
    """The header fields split into the core ones (always written) and the optional ones."""
    core = set(core)
    return [f for f in fields if f[0] in core], [f for f in fields if f[0] not in core]
