"""One entry point for the corpus formats: `read_corpus(path, "brat" | "conll" | "jsonl", problems)`."""
from pathlib import Path
from typing import Iterator

from deid_synthesis.corpus.brat import read_brat
from deid_synthesis.corpus.conll import read_conll
from deid_synthesis.corpus.jsonl import read_jsonl
from deid_synthesis.corpus.records import CorpusError, Problems, Record, check_encoding

FORMATS = ("brat", "conll", "jsonl")


def read_corpus(
    path: Path,
    fmt: str,
    problems: Problems,
    encoding: str = "utf-8",
    tag_scheme: str = "auto",
    sents_per_doc: int = 10,
    text_field: str = "text",
) -> Iterator[Record]:
    """Dispatch on the format name used by the CLI: brat, conll or jsonl."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    check_encoding(path, encoding)
    if fmt == "brat":
        return read_brat(path, problems, encoding)
    if fmt == "conll":
        return read_conll(path, problems, tag_scheme, sents_per_doc, encoding)
    if fmt == "jsonl":
        return read_jsonl(path, problems, text_field, encoding)
    raise CorpusError(f"unknown format '{fmt}': use brat, conll or jsonl")
