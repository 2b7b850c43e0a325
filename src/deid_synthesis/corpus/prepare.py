"""Convert a corpus folder's train / dev / test parts into corpus/<dataset>/*.spacy.

A data folder holds one entry per split, in the layout each format ships in:
`train/`, `dev/`, `test/` folders of BRAT files (MEDDOCAN); `train.jsonl`, ... (the demo,
annotation tools); `train.conll`, ... or `train_corpus.txt`, ... (the Swedish NER corpus).
When there is no dev part, a seeded share of the training documents is held out as dev,
so that model selection never looks at the test split.
"""
import random
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional

import spacy
import srsly

from clinical_deid.io import atomic_path, read_docbin, write_docbin
from deid_synthesis.corpus.card import read_card
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.records import CorpusError

SPLITS = ("train", "dev", "test")
PATTERNS = {
    "brat": ["{split}", "{split}/brat"],
    "jsonl": ["{split}.jsonl"],
    "conll": ["{split}.conll", "{split}.txt", "{split}_corpus.txt", "{split}.tsv"],
}


def find_split(data_dir: Path, fmt: str, split: str) -> Optional[Path]:
    """The file or folder of one part (`train`, `dev`, `test`) in DATA_DIR, or None."""
    if fmt not in PATTERNS:
        raise CorpusError(f"unknown format '{fmt}': use one of {sorted(PATTERNS)}")
    for pattern in PATTERNS[fmt]:
        path = data_dir / pattern.format(split=split)
        if path.exists():
            return path
    return None


def hold_out_dev(train_path: Path, dev_path: Path, share: float, seed: int,
                 source: Optional[Path] = None) -> Dict[str, int]:
    """Move a seeded share of the training documents into a dev DocBin.

    source (Optional[Path]): the train part read, named in messages (train_path is staged).
    """
    if not 0 < share < 1:
        raise CorpusError(f"--dev-share must be between 0 and 1, not {share}")
    docs = read_docbin(train_path, spacy.blank("xx").vocab)
    if len(docs) < 2:  # one document went to dev and left train empty
        raise CorpusError(f"{source or train_path}: {len(docs)} training document(s), too few to hold "
                          "out a dev share: add a dev part, or more training documents")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(docs) * share))
    dev_ids = set(order[:n_dev])
    write_docbin([doc for i, doc in enumerate(docs) if i in dev_ids], dev_path)
    write_docbin([doc for i, doc in enumerate(docs) if i not in dev_ids], train_path)
    return {"train": len(docs) - n_dev, "dev": n_dev}


def _convert_parts(inputs: Dict, staging: Path, fmt: str, lang: str, dev_share: float, seed: int,
                   convert_args: Dict) -> Dict:
    """Convert every part into `staging`, so that a failing part leaves the old corpus whole."""
    reports = {}
    for split, path in inputs.items():
        if path is not None:
            reports[split] = convert(path, staging / f"{split}.spacy", fmt, lang, **convert_args)
            if split != "dev" and reports[split]["entities"] == 0:  # (issue 12: a success mark over it)
                raise CorpusError(f"{path}: no entities in the {split} part; "
                                  + "; ".join(reports[split]["warnings"]))
    if inputs["dev"] is None:
        sizes = hold_out_dev(staging / "train.spacy", staging / "dev.spacy", dev_share, seed, inputs["train"])
        reports["dev"] = {"held_out_from_train": sizes, "seed": seed}
    for split in ("dev", "test"):
        if "entities_per_label" in reports[split]:
            reports[split]["warnings"].extend(unseen_label_warnings(reports["train"], reports[split], split))
    return reports


def unseen_label_warnings(train: Dict, other: Dict, split: str) -> list:
    """Labels of a dev or test part that train never has: no model learns them.

    train (Dict): the train part's report.
    other (Dict): the dev or test part's report.
    split (str): its name.
    RETURNS (list): one warning naming the labels and their counts, or none.
    """
    unseen = {label: n for label, n in other["entities_per_label"].items()
              if label not in train["entities_per_label"]}
    if not unseen:
        return []
    listed = ", ".join(f"{label} ({n})" for label, n in sorted(unseen.items()))
    return [f"{other['input']}: labels the train part never has, which no model trained on it finds: {listed}"]


def prepare(
    data_dir: Path, output_dir: Path, fmt: str, lang: str, dev_share: float = 0.1, seed: int = 0, **convert_args
) -> Dict:
    """Convert every part of DATA_DIR into OUTPUT_DIR/{train,dev,test}.spacy and report.json.

    data_dir (Path): the corpus folder (see the module's docstring for the layouts).
    output_dir (Path): where the DocBins and report.json go. All parts are converted into a
        staging folder first and replace the old ones only when every part succeeded.
    fmt (str): "brat", "conll" or "jsonl".
    lang (str): the language code.
    dev_share (float): share of train held out as dev when there is no dev part.
    seed (int): seed of that hold-out.
    convert_args: options of `convert` (split, max_words, misaligned, lenient, ...).
    RETURNS (Dict): the report per part, as written to report.json (with the folder's corpus
        card's "about" and "demo", when it has one: deid_synthesis.corpus.card).
    """
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    if not data_dir.is_dir():
        raise CorpusError(
            f"{data_dir}: no such data folder (fetch it with `spacy project assets` "
            "or point --vars.data_dir at a local copy)"
        )
    inputs = {split: find_split(data_dir, fmt, split) for split in SPLITS}
    card = read_card(data_dir)  # a bad card stops here, before any conversion
    for split in ("train", "test"):
        if inputs[split] is None:
            patterns = ", ".join(p.format(split=split) for p in PATTERNS[fmt])
            raise CorpusError(f"{data_dir}: no {split} part found (looked for {patterns})")
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
    try:
        reports = _convert_parts(inputs, staging, fmt, lang, dev_share, seed, convert_args)
        for split in SPLITS:  # all parts converted: only now replace the old ones
            (staging / f"{split}.spacy").replace(output_dir / f"{split}.spacy")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for split, report in reports.items():
        if "output" in report:
            report["output"] = str(output_dir / f"{split}.spacy")
    if card:  # "about" and "demo" are not parts: readers of the report take its dict entries only
        reports.update(card)
    with atomic_path(output_dir / "report.json") as tmp:
        srsly.write_json(tmp, reports)
    return reports
