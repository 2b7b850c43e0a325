"""Project step: `python -m scripts.pseudonymize_corpus` (see deid_synthesis.pseudonymize_corpus)."""
import typer

from deid_synthesis.pseudonymize_corpus import *  # noqa: F401,F403
from deid_synthesis.pseudonymize_corpus import main

if __name__ == "__main__":
    typer.run(main)
