"""Project step `sample-test`: a seeded sample of a DocBin's documents, cut into chunks, as a DocBin.

    python -m scripts.sample_docbin corpus/meddocan/test.spacy corpus/meddocan/test-sample.spacy \\
        --docs 25 --seed 0 --max-words 128

(see deid_synthesis.corpus.sample). Prints counts, never text.
"""
from pathlib import Path

import spacy
import typer
from wasabi import msg

from clinical_deid.io import DataError, read_docbin, write_docbin
from deid_synthesis.corpus.sample import sample_chunks


def main(
    input_path: Path = typer.Argument(..., help="DocBin to sample from"),
    output_path: Path = typer.Argument(..., help="DocBin to write"),
    docs: int = typer.Option(25, "--docs", help="Documents drawn (0: all)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk"),
):
    """Write the chunks of a seeded sample of documents."""
    try:
        corpus = read_docbin(input_path, spacy.blank("xx").vocab)
    except DataError as err:
        msg.fail(str(err), exits=1)
    chunks = sample_chunks(corpus, docs, seed, max_words)
    write_docbin(chunks, output_path)
    msg.good(f"{min(docs, len(corpus)) if docs > 0 else len(corpus)} of {len(corpus)} documents → {len(chunks)} "
             f"chunks, {sum(len(c.ents) for c in chunks)} entities → {output_path}")


if __name__ == "__main__":
    typer.run(main)
