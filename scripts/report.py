"""Project step: `python -m scripts.report` (see deid_synthesis.report)."""
import typer

from deid_synthesis.report import *  # noqa: F401,F403
from deid_synthesis.report import main

if __name__ == "__main__":
    typer.run(main)
