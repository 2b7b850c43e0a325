"""Project step: `python -m scripts.prune_strings` (see deid_synthesis.prune_strings)."""
import typer

from deid_synthesis.prune_strings import *  # noqa: F401,F403
from deid_synthesis.prune_strings import main

if __name__ == "__main__":
    typer.run(main)
