"""Project step `train`: `spacy train`, timed, the saved pipelines pruned to the strings they need.

    python -m scripts.train configs/ner_cpu.cfg --output training/meddocan/ner_cpu \\
        --paths.train corpus/meddocan/train.spacy --paths.dev corpus/meddocan/dev.spacy

Overrides are passed as spaCy's CLI takes them; the wall time goes into <output>/train_time.json
(deid_synthesis.train).
"""
from pathlib import Path

import typer
from spacy.cli._util import parse_config_overrides
from wasabi import msg

from deid_synthesis.train import timed_train


def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output_path: Path = typer.Option(..., "--output", "-o", help="Output folder for model-best / model-last"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
):
    """Train a pipeline with `spacy train` and record how long it took."""
    seconds = timed_train(config_path, output_path, parse_config_overrides(ctx.args), gpu_id)
    msg.good(f"Trained in {seconds / 60:.1f} min → {output_path}")


if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
