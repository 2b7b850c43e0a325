"""Project step: `python -m scripts.residual_phi` (see deid_synthesis.residual_phi)."""
import typer

from deid_synthesis.residual_phi import *  # noqa: F401,F403
from deid_synthesis.residual_phi import main

if __name__ == "__main__":
    typer.run(main)
