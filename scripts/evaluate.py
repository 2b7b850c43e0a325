"""Project step: `python -m scripts.evaluate` (see deid_synthesis.evaluate)."""
import typer

from deid_synthesis.evaluate import *  # noqa: F401,F403
from deid_synthesis.evaluate import main

if __name__ == "__main__":
    typer.run(main)
