"""Project step: `python -m scripts.rules_effect` (see deid_synthesis.rules_effect)."""
import typer

from deid_synthesis.rules_effect import *  # noqa: F401,F403
from deid_synthesis.rules_effect import main

if __name__ == "__main__":
    typer.run(main)
