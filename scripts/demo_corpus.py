"""Project step `demo-corpus`: write the synthetic demo corpus (see deid_synthesis.corpus.demo)."""
import typer

from deid_synthesis.corpus.demo.notes import main

if __name__ == "__main__":
    typer.run(main)
