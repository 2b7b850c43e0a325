"""Prune a saved pipeline's string store to the strings the pipeline needs.

    python -m scripts.prune_strings training/meddocan/ner_cpu/model-best [more pipelines]

`spacy train` saves every string the pipeline ever met: each token of the training text,
its lower-case form, prefix, suffix and shape, in `vocab/strings.json`. The models need none
of them: the tok2vec embeds NORM/PREFIX/SUFFIX/SHAPE by their hashes, computed from the text
being processed, and every lexeme processing creates adds its own strings again. What a
pipeline needs are the strings loading it adds back (the NER labels from `ner/moves`,
settings of the components, tokenizer special cases), so the pruned store is exactly that:
the pipeline is loaded with an empty `strings.json` and the strings it then holds are
written back. Nothing else of a saved pipeline holds text (checked by deid_synthesis.wheel_check):
`ner/moves` is saved without its strings, `vocab/lookups.bin` keys by hash, and the vectors'
keys are hashes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, List

import spacy
import srsly


def strings_path(model: Path) -> Path:
    """The string store of a saved pipeline; a clear error for a folder that is not one.

    model (Path): a saved pipeline.
    RETURNS (Path): its vocab/strings.json. Raises FileNotFoundError naming the folder.
    """
    path = Path(model) / "vocab" / "strings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model}: no vocab/strings.json (not a saved spaCy pipeline)")
    return path


def needed_strings(model: Path) -> List[str]:
    """The strings MODEL holds once loaded from an empty string store, in a stable order.

    The load runs on a view of MODEL (links to its files, a `vocab/strings.json` of `[]`), so
    nothing is copied, not even a transformer's weights. Custom factories and tokenizers must
    be registered by the caller, as for any `spacy.load`.

    model (Path): a saved pipeline.
    RETURNS (List[str]): the strings, sorted.
    """
    model = Path(model).resolve()
    strings_path(model)
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp) / "pipeline"
        view.mkdir()
        for entry in model.iterdir():
            if entry.name != "vocab":
                os.symlink(entry, view / entry.name)
        (view / "vocab").mkdir()
        for entry in (model / "vocab").iterdir():
            if entry.name != "strings.json":
                os.symlink(entry, view / "vocab" / entry.name)
        srsly.write_json(view / "vocab" / "strings.json", [])
        nlp = spacy.load(view)
        return sorted(nlp.vocab.strings)


def prune_strings(model: Path) -> Dict[str, int]:
    """Rewrite MODEL's `vocab/strings.json` with only the strings loading it needs.

    model (Path): a saved pipeline.
    RETURNS (Dict[str, int]): the counts before and after (for logs: never the strings themselves).
    """
    path = strings_path(model)
    before = len(srsly.read_json(path))
    kept = needed_strings(model)
    srsly.write_json(path, kept)
    return {"before": before, "after": len(kept)}

