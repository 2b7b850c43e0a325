"""Project step: `python -m scripts.adapt` (see deid_synthesis.adapt)."""
import typer

from deid_synthesis.adapt import *  # noqa: F401,F403
from deid_synthesis.adapt import main

if __name__ == "__main__":
    typer.run(main)
