"""Project step: `python -m scripts.annotate` (see deid_synthesis.annotate)."""
import typer

from deid_synthesis.annotate import *  # noqa: F401,F403
from deid_synthesis.annotate import main

if __name__ == "__main__":
    typer.run(main)
