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
import typer
from spacy.tokens import DocBin
from wasabi import msg

from deid_synthesis.convert import convert, print_report
from deid_synthesis.corpus_readers import CorpusError

SPLITS = ("train", "dev", "test")
PATTERNS = {
    "brat": ["{split}", "{split}/brat"],
    "jsonl": ["{split}.jsonl"],
    "conll": ["{split}.conll", "{split}.txt", "{split}_corpus.txt", "{split}.tsv"],
}


def find_split(data_dir: Path, fmt: str, split: str) -> Optional[Path]:
    if fmt not in PATTERNS:
        raise CorpusError(f"unknown format '{fmt}': use one of {sorted(PATTERNS)}")
    for pattern in PATTERNS[fmt]:
        path = data_dir / pattern.format(split=split)
        if path.exists():
            return path
    return None


def hold_out_dev(train_path: Path, dev_path: Path, share: float, seed: int) -> Dict[str, int]:
    """Move a seeded share of the training documents into a dev DocBin."""
    if not 0 < share < 1:
        raise CorpusError(f"--dev-share must be between 0 and 1, not {share}")
    docbin = DocBin(store_user_data=True).from_disk(train_path)
    docs = list(docbin.get_docs(spacy.blank("xx").vocab))
    if len(docs) < 2:  # one document went to dev and left train empty
        raise CorpusError(f"{train_path}: {len(docs)} training document(s), too few to hold out a dev share")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(docs) * share))
    dev_ids = set(order[:n_dev])
    DocBin(docs=[d for i, d in enumerate(docs) if i in dev_ids], store_user_data=True).to_disk(dev_path)
    DocBin(docs=[d for i, d in enumerate(docs) if i not in dev_ids], store_user_data=True).to_disk(train_path)
    return {"train": len(docs) - n_dev, "dev": n_dev}


def _convert_parts(inputs: Dict, staging: Path, fmt: str, lang: str, dev_share: float, seed: int,
                   convert_args: Dict) -> Dict:
    """Convert every part into `staging`, so that a failing part leaves the old corpus whole."""
    reports = {}
    for split, path in inputs.items():
        if path is not None:
            reports[split] = convert(path, staging / f"{split}.spacy", fmt, lang, **convert_args)
    if inputs["dev"] is None:
        sizes = hold_out_dev(staging / "train.spacy", staging / "dev.spacy", dev_share, seed)
        reports["dev"] = {"held_out_from_train": sizes, "seed": seed}
    return reports


def prepare(
    data_dir: Path, output_dir: Path, fmt: str, lang: str, dev_share: float = 0.1, seed: int = 0, **convert_args
) -> Dict:
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    if not data_dir.is_dir():
        raise CorpusError(
            f"{data_dir}: no such data folder (fetch it with `spacy project assets` "
            "or point --vars.data_dir at a local copy)"
        )
    inputs = {split: find_split(data_dir, fmt, split) for split in SPLITS}
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
            print_report(report)
    if inputs["dev"] is None:
        sizes = reports["dev"]["held_out_from_train"]
        msg.info(f"No dev part: held out {sizes['dev']} of the training documents as dev (seed {seed})")
    srsly.write_json(output_dir / "report.json", reports)
    return reports


def main(
    data_dir: Path = typer.Argument(..., help="Folder with the corpus's train/dev/test parts"),
    output_dir: Path = typer.Argument(..., help="Folder for train/dev/test .spacy and report.json"),
    fmt: str = typer.Option(..., "--format", "-f", help="brat, conll or jsonl"),
    lang: str = typer.Option(..., "--lang", "-l", help="Language code"),
    split: str = typer.Option("none", "--split", help="none, sentences or chunks"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk"),
    misaligned: str = typer.Option("split", "--misaligned", help="split, expand, contract, skip or error"),
    lenient: bool = typer.Option(False, "--lenient/--strict", help="Skip and count malformed items, or stop at the first"),
    dev_share: float = typer.Option(0.1, "--dev-share", help="Share of train held out when there is no dev part"),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev hold-out"),
):
    """Convert all parts of a corpus folder and write a report."""
    try:
        prepare(data_dir, output_dir, fmt, lang, dev_share, seed, split=split,
                max_words=max_words, misaligned=misaligned, lenient=lenient)
    except CorpusError as err:
        msg.fail(str(err), exits=1)
    msg.good(f"Corpus ready in {output_dir} (report: {output_dir / 'report.json'})")


if __name__ == "__main__":
    typer.run(main)
