"""Project step: `python -m scripts.results_table` (see deid_synthesis.results_table)."""
import typer

from deid_synthesis.results_table import *  # noqa: F401,F403
from deid_synthesis.results_table import main

if __name__ == "__main__":
    typer.run(main)
