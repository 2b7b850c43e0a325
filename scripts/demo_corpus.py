"""Project step `demo-corpus`: write the synthetic demo corpus (template notes with Faker PHI).

`python -m scripts.demo_corpus OUTPUT_DIR --lang es|sv|de --n-train 300 --n-dev 60 --n-test 60 --seed 0`
writes OUTPUT_DIR/train.jsonl, dev.jsonl and test.jsonl; the work is `deid_synthesis.corpus.demo`.
"""
from pathlib import Path

import typer
from typing import Annotated
from wasabi import msg

from deid_synthesis.corpus.demo import LABELS, entity_counts, generate_corpus, write_corpus


def main(
    output_dir: Annotated[Path, typer.Argument(help="Folder for train/dev/test.jsonl")],
    lang: Annotated[str, typer.Option(help="es (MEDDOCAN labels), sv (Stockholm EPR PHI labels) or de (a label set of its own: NAME_PATIENT, LOCATION_ZIP, CONTACT_PHONE ...)")] = "es",
    n_train: Annotated[int, typer.Option(min=0, help="Documents in train.jsonl")] = 300,
    n_dev: Annotated[int, typer.Option(min=0, help="Documents in dev.jsonl")] = 60,
    n_test: Annotated[int, typer.Option(min=0, help="Documents in test.jsonl")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (each split derives its own)")] = 0,
) -> None:
    """Write a synthetic demo corpus (template notes + Faker PHI; not real data)."""
    if lang not in LABELS:
        msg.fail(f"Unsupported language {lang!r}; choose one of: {', '.join(sorted(LABELS))}", exits=1)
    corpus = generate_corpus(lang, n_train=n_train, n_dev=n_dev, n_test=n_test, seed=seed)
    write_corpus(output_dir, corpus)
    summary = ", ".join(
        f"{split} {len(docs)} docs / {sum(entity_counts(docs).values())} entities"
        for split, docs in corpus.items()
    )
    msg.good(f"Wrote demo corpus ({lang}, seed {seed}) to {output_dir}: {summary}")


if __name__ == "__main__":
    typer.run(main)
