"""Project step of `production-check`: a corpus part's texts as the production command's input.

    python -m scripts.gold_texts assets/demo-es deidentified/demo-es/check/input.jsonl --format jsonl --part test

Any format the converters read (BRAT, JSONL, CoNLL) becomes one JSONL line per document,
`{"id", "text"}`, with the ids `convert` gives (a JSONL record without an id: `<stem>-<line>`;
a CoNLL document: `<stem>-<index>`), so that `scripts.residual_phi` matches the output to the gold.
"""
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from deid_synthesis.corpus.records import CorpusError, Problems
from deid_synthesis.residual_input import GOLD_FORMATS, write_gold_texts


def main(
    gold: Annotated[Path, typer.Argument(exists=True, help="BRAT folder, JSONL or CoNLL file, or a data folder with --part")],
    output: Annotated[Path, typer.Argument(dir_okay=False, help="JSONL to write: {id, text} per document")],
    fmt: Annotated[str, typer.Option("--format", help=f"{', '.join(GOLD_FORMATS)} (auto: from the name)")] = "auto",
    part: Annotated[Optional[str], typer.Option(help="GOLD is a data folder: this part of it (e.g. test)")] = None,
    lenient: Annotated[bool, typer.Option("--lenient/--strict", help="Skip and count malformed items, or stop at the first")] = False,
) -> None:
    """Write a corpus part's texts with the converter's ids, for the production check."""
    problems = Problems(lenient=lenient)
    try:
        n_docs = write_gold_texts(gold, output, fmt, problems, part)
    except (CorpusError, ValueError) as err:
        msg.fail(str(err), exits=1)
    for kind, count in sorted(problems.counts.items()):
        msg.warn(f"Skipped {count:,} malformed items ({kind}), first at {problems.where[kind][0]}")
    if not n_docs:
        msg.fail(f"{gold}: no documents to write", exits=1)
    msg.good(f"{n_docs:,} documents → {output}")


if __name__ == "__main__":
    typer.run(main)
