"""Project step: `python -m scripts.wheel_check` (see deid_synthesis.wheel_check)."""
import typer

from deid_synthesis.wheel_check import *  # noqa: F401,F403
from deid_synthesis.wheel_check import main

if __name__ == "__main__":
    typer.run(main)
