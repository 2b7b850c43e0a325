"""Project step: `python -m scripts.convert` (see deid_synthesis.convert)."""
import typer

from deid_synthesis.convert import *  # noqa: F401,F403
from deid_synthesis.convert import main

if __name__ == "__main__":
    typer.run(main)
