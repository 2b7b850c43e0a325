"""Project step: `python -m scripts.bench_generation` (see deid_synthesis.bench_generation)."""
import typer

from deid_synthesis.bench_generation import *  # noqa: F401,F403
from deid_synthesis.bench_generation import main

if __name__ == "__main__":
    typer.run(main)
