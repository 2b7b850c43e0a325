"""Project step: `python -m scripts.prepare_corpus` (see deid_synthesis.prepare_corpus)."""
import typer

from deid_synthesis.prepare_corpus import *  # noqa: F401,F403
from deid_synthesis.prepare_corpus import main

if __name__ == "__main__":
    typer.run(main)
