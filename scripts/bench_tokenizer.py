"""Project step: `python -m scripts.bench_tokenizer` (see deid_synthesis.bench_tokenizer)."""
import typer

from deid_synthesis.bench_tokenizer import *  # noqa: F401,F403
from deid_synthesis.bench_tokenizer import main

if __name__ == "__main__":
    typer.run(main)
