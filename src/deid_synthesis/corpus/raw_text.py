"""Raw text for `spacy pretrain`: the notes of DocBins and JSONL files as {"text"} lines.

Pretraining needs no labels, so any note counts: the gold training notes and, free and
unlimited, the synthetic notes. What goes in decides what the weights have seen: a tok2vec
pretrained on gold notes initialises the gold annotator only; a product meant for sharing is
pretrained on synthetic notes alone (pass only those).
"""
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

from clinical_deid.io import DataError, read_docbin, read_jsonl, write_jsonl


def texts_of(path: Path) -> Iterator[str]:
    """The note texts of a DocBin (.spacy) or a JSONL file of {"text": ...} records.

    path (Path): the file; DataError naming it (and the line) when it cannot be read.
    """
    path = Path(path)
    if path.suffix == ".spacy":
        yield from (doc.text for doc in read_docbin(path))
    elif path.suffix == ".jsonl":
        yield from (record["text"] for _, _, record in read_jsonl(path))
    else:
        raise DataError(f"{path}: expected a DocBin (.spacy) or a JSONL file (.jsonl)")


def write_raw_texts(inputs: Sequence[Path], output: Path) -> Dict[str, int]:
    """Write the non-empty notes of every input, in order, as JSONL {"text"} lines (atomically).

    inputs (Sequence[Path]): DocBins and JSONL files.
    output (Path): the JSONL to write.
    RETURNS (Dict[str, int]): notes per input file (empty notes skipped and not counted).
    """
    counts: Dict[str, int] = {}
    rows: List[Dict[str, str]] = []
    for path in inputs:
        texts = [text for text in texts_of(path) if text.strip()]
        counts[str(path)] = len(texts)
        rows.extend({"text": text} for text in texts)
    if not rows:
        raise DataError(f"no notes in {', '.join(map(str, inputs))}")
    write_jsonl(rows, output)
    return counts
