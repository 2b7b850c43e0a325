"""Prune saved pipelines' string stores to the strings they need (labels, settings).

    python -m scripts.prune_strings training/meddocan/ner_cpu/model-best [more pipelines]

Why and how: deid_synthesis.prune_strings. Prints the counts, never the strings.
"""
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from deid_synthesis.prune_strings import prune_strings


def main(models: List[Path] = typer.Argument(..., exists=True, file_okay=False, help="Saved pipelines (model-best, model-last)")):
    """Prune the string store of saved pipelines to what they need (labels, settings)."""
    for model in models:
        try:
            counts = prune_strings(model)
        except FileNotFoundError as err:
            msg.fail(str(err), exits=1)
        msg.good(f"{model}: {counts['before']} strings -> {counts['after']}")


if __name__ == "__main__":
    typer.run(main)
