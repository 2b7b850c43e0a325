"""Project step: convert one annotated corpus part (BRAT folder, CoNLL or JSONL file) to a DocBin.

`python -m scripts.convert INPUT OUTPUT.spacy --format brat --lang es`; the work is
`deid_synthesis.corpus.convert.convert`.
"""
from pathlib import Path
from typing import Optional

import srsly
import typer
from wasabi import msg

from clinical_deid.io import atomic_path
from deid_synthesis.corpus.convert import convert, print_report
from deid_synthesis.corpus.records import CorpusError


def main(
    input_path: Path = typer.Argument(..., help="BRAT folder, CoNLL file or JSONL file"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (DocBin)"),
    fmt: str = typer.Option(..., "--format", "-f", help="brat, conll or jsonl"),
    lang: str = typer.Option(..., "--lang", "-l", help="Language code, e.g. es or sv"),
    split: str = typer.Option("none", "--split", help="none, sentences or chunks"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk (--split chunks)"),
    misaligned: str = typer.Option("split", "--misaligned", help="split, expand, contract, skip or error"),
    lenient: bool = typer.Option(False, "--lenient", help="Skip and count malformed items instead of stopping"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Input encoding (utf-8 keeps BRAT BOM offsets right)"),
    tag_scheme: str = typer.Option("auto", "--tag-scheme", help="CoNLL tags: auto, io, bio, bilou or bioes (= iobes: E- ends, S- single)"),
    sents_per_doc: int = typer.Option(10, "--sents-per-doc", help="CoNLL sentences per document"),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field holding the text"),
    tokenizer: str = typer.Option("deid.clinical_tokenizer.v1", "--tokenizer", help="Registered tokenizer, or 'default'"),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the report as JSON here"),
):
    """Convert a corpus to a DocBin and report what was read."""
    try:
        report = convert(input_path, output_path, fmt, lang, split, max_words, misaligned,
                         lenient, encoding, tag_scheme, sents_per_doc, text_field, tokenizer)
    except CorpusError as err:
        msg.fail(str(err), exits=1)
    print_report(report)
    if report_path is not None:
        with atomic_path(report_path) as tmp:
            srsly.write_json(tmp, report)


if __name__ == "__main__":
    typer.run(main)
