"""Project step: `python -m scripts.bench_deid` (see deid_synthesis.bench_deid)."""
import typer

from deid_synthesis.bench_deid import *  # noqa: F401,F403
from deid_synthesis.bench_deid import main

if __name__ == "__main__":
    typer.run(main)
