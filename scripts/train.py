"""Project step: `python -m scripts.train` (see deid_synthesis.train)."""
import typer

from deid_synthesis.train import *  # noqa: F401,F403
from deid_synthesis.train import main

if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
