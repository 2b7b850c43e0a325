"""Project step `convert`: a corpus folder's train / dev / test parts → corpus/<dataset>/*.spacy.

`python -m scripts.prepare_corpus DATA_DIR OUTPUT_DIR --format brat --lang es`; the work is
`deid_synthesis.corpus.prepare.prepare` (it also writes OUTPUT_DIR/report.json).
"""
from pathlib import Path

import typer
from wasabi import msg

from deid_synthesis.corpus.convert import print_report
from deid_synthesis.corpus.prepare import SPLITS, prepare
from deid_synthesis.corpus.records import CorpusError


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
        reports = prepare(data_dir, output_dir, fmt, lang, dev_share, seed, split=split,
                          max_words=max_words, misaligned=misaligned, lenient=lenient)
    except CorpusError as err:
        msg.fail(str(err), exits=1)
    parts = [reports[split] for split in SPLITS]
    for report in parts:
        if "output" in report:
            print_report(report)
    if reports.get("demo"):
        msg.info(f"Corpus card: {reports['about']}")
    held_out = reports["dev"].get("held_out_from_train")
    if held_out is not None:
        msg.info(f"No dev part: held out {held_out['dev']} of the training documents as dev (seed {seed})")
    n_warnings = sum(len(report.get("warnings", [])) for report in parts)
    ready = f"Corpus ready in {output_dir} (report: {output_dir / 'report.json'})"
    if n_warnings:  # no success mark over a warning (issue 12)
        msg.warn(f"{ready}, with {n_warnings} warning(s) above")
    else:
        msg.good(ready)


if __name__ == "__main__":
    typer.run(main)
