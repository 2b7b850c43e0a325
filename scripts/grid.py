"""Project step: `python -m scripts.grid` (see deid_synthesis.grid)."""
import typer

from deid_synthesis.grid import *  # noqa: F401,F403
from deid_synthesis.grid import main

if __name__ == "__main__":
    typer.run(main)
