"""Project step: `python -m scripts.package_pipeline` (see deid_synthesis.package_pipeline)."""
import typer

from deid_synthesis.package_pipeline import *  # noqa: F401,F403
from deid_synthesis.package_pipeline import main

if __name__ == "__main__":
    typer.run(main)
