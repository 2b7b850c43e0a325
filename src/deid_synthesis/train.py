"""`spacy train`, timed: the wall time goes into <output>/train_time.json for the results table.

The saved pipelines (model-best, model-last) are then pruned to the strings they need
(scripts/prune_strings.py): `spacy train` saves every word of the training text in
`vocab/strings.json`, and a model must not ship its training notes' words.

Overrides are passed as spaCy's CLI takes them (`--paths.train corpus/x/train.spacy`).
"""
import time
from pathlib import Path

import srsly
import typer
from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train
from wasabi import msg

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from deid_synthesis.prune_strings import prune_strings

SAVED = ("model-best", "model-last")


def timed_train(config_path: Path, output_path: Path, overrides: dict, use_gpu: int = -1) -> float:
    """Train, record the wall time of training alone, then prune the saved pipelines' strings
    (their counts before and after go into train_time.json as `strings`)."""
    start = time.perf_counter()
    train(config_path, output_path, use_gpu=use_gpu, overrides=overrides)
    seconds = time.perf_counter() - start
    strings = {name: prune_strings(Path(output_path) / name) for name in SAVED if (Path(output_path) / name).is_dir()}
    srsly.write_json(Path(output_path) / "train_time.json", {"seconds": round(seconds, 1), "config": str(config_path),
                                                             "overrides": overrides, "gpu_id": use_gpu,
                                                             "strings": strings})
    return seconds


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
