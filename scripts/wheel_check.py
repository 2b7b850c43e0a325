"""Check that a built wheel holds no term (a run of 4+ letters or digits) of the text its model learned from.

    python -m scripts.wheel_check packages/es_deid_synth-0.1.0/dist/es_deid_synth-0.1.0-py3-none-any.whl \\
        corpus/meddocan/train.spacy corpus/meddocan/dev.spacy

What is read and what is allowed: deid_synthesis.wheel_check. Prints counts and file names,
never the terms (unless --show-words); exit 1 on any finding.
"""
import zipfile
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from deid_synthesis.wheel_check import check_wheel, report


def main(
    wheel: Path = typer.Argument(..., exists=True, dir_okay=False, help="Built wheel (.whl)"),
    training: List[Path] = typer.Argument(..., exists=True, dir_okay=False, help="Training text: .spacy DocBins, .jsonl notes"),
    allow_text: List[str] = typer.Option([], "--allow-text", help="Text the packager was given (name, description, licences): its terms are allowed"),
    show_words: bool = typer.Option(False, "--show-words", help="Print the terms found (private checks only: they may be PHI)"),
):
    """Fail (exit 1) when the wheel holds a training-text term outside the allow-list."""
    try:
        result = check_wheel(wheel, training, allow_text)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        msg.fail(f"{wheel}: {type(err).__name__}: {err}", exits=1)
    if not report(result, wheel, show_words):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
