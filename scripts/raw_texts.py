"""Project step of `pretrain`: the notes to pretrain on, as the JSONL `spacy pretrain` reads.

    python -m scripts.raw_texts corpus/meddocan/train.spacy synthetic/meddocan/v1/samples.jsonl \\
        --output corpus/meddocan/pretrain.jsonl

The work is `deid_synthesis.corpus.raw_text`; no note text is printed.
"""
from pathlib import Path
from typing import Annotated, List

import typer
from wasabi import msg

from clinical_deid.io import DataError
from deid_synthesis.corpus.raw_text import write_raw_texts


def main(
    inputs: Annotated[List[Path], typer.Argument(help="DocBins (.spacy) and JSONL files of {text} records")],
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False, help="JSONL to write, {text} per line")],
) -> None:
    """Write the notes of every input as raw text for `spacy pretrain`."""
    try:
        counts = write_raw_texts(inputs, output)
    except DataError as err:
        msg.fail(str(err), exits=1)
    for path, n in counts.items():
        msg.info(f"{n:,} notes from {path}")
    msg.good(f"{sum(counts.values()):,} notes → {output}")


if __name__ == "__main__":
    typer.run(main)
