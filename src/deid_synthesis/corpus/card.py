"""The corpus card: a data folder's word about what it holds, carried into every report.

A data folder may hold `corpus_card.json`, an object with `about` (a sentence on what the
corpus is) and `demo` (true for template text that says nothing about real data). `convert`
copies it into corpus/<dataset>/report.json, and the run report prints it at the top, so a
figure measured on the demo corpus never reads as one measured on clinical notes. The card is
the user's own text about the corpus, never note text.
"""
from pathlib import Path
from typing import Dict, Optional

import srsly

from deid_synthesis.corpus.records import CorpusError

CARD_FILE = "corpus_card.json"
CARD_KEYS = {"about": str, "demo": bool}


def read_card(data_dir: Path) -> Optional[Dict]:
    """The card of a data folder, or None when it has none.

    data_dir (Path): the corpus folder.
    RETURNS (Optional[Dict]): {"about": str, "demo": bool}; CorpusError naming the file for bad JSON,
        an unknown key or a value of the wrong type.
    """
    path = Path(data_dir) / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = srsly.read_json(path)
    except ValueError as err:
        raise CorpusError(f"{path}: not valid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(card, dict):
        raise CorpusError(f"{path}: expected a JSON object with {', '.join(CARD_KEYS)}")
    problems = [f"unknown key {key!r}" for key in card if key not in CARD_KEYS]
    problems += [f"{key!r} must be a {kind.__name__}" for key, kind in CARD_KEYS.items()
                 if key in card and not isinstance(card[key], kind)]
    if problems:
        raise CorpusError(f"{path}: {'; '.join(problems)} (keys: {', '.join(CARD_KEYS)})")
    return {"about": card.get("about", ""), "demo": card.get("demo", False)}
