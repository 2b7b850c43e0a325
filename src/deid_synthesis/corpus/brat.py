"""BRAT standoff folders (MEDDOCAN): one `.txt` per note, its `.ann` beside it.

Only text-bound annotations (T lines) carry spans; each is checked against the text it
claims to cover, so a byte-order mark read the wrong way is caught, not learnt.
"""
import re
from pathlib import Path
from typing import Dict, Iterator, Tuple

from deid_synthesis.corpus.records import (
    CorpusError,
    Problems,
    Record,
    SpanRecord,
    check_spans,
    read_or_skip,
    split_lines,
)

# BRAT offsets: ASCII digits only (str.isdigit accepts '²' and other digits int() refuses),
# and few enough of them that int() never meets Python's digit limit.
OFFSET = re.compile(r"[0-9]{1,15}")


def read_brat(
    folder: Path, problems: Problems, encoding: str = "utf-8"
) -> Iterator[Record]:
    """One record per `.txt` file; its `.ann` gives text-bound annotations (T lines).

    Other annotation kinds (relations, events, attributes, notes) carry no spans and are
    ignored. Discontinuous spans ("0 5;9 12") cannot be one entity and are malformed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: not a folder of BRAT .txt/.ann files")
    txt_files, ann_files = _pairs(folder)
    if not txt_files:
        raise CorpusError(f"{folder}: no .txt files found")
    for stem in sorted(set(ann_files) - set(txt_files)):
        problems.add("missing_txt", str(ann_files[stem]), "no .txt file beside this .ann")
    for stem, txt_path in sorted(txt_files.items()):
        ann_path = ann_files.get(stem)
        if ann_path is None:
            problems.add("missing_ann", str(txt_path), "no .ann file beside this .txt")
            continue
        text = read_or_skip(txt_path, problems, encoding)
        ann = None if text is None else read_or_skip(ann_path, problems, encoding)
        if ann is None:
            continue
        # A byte-order mark in the .ann is no part of its first line (it hid the first T line);
        # the .txt keeps its own, which the offsets count.
        spans = list(_read_ann(ann_path, ann.lstrip("\ufeff"), text, problems))
        yield check_spans(Record(txt_path.stem, text, spans, str(txt_path)), problems)


def _pairs(folder: Path) -> Tuple[Dict[str, Path], Dict[str, Path]]:
    """The folder's .txt and .ann files by stem, the suffix in any case ('.TXT' was ignored)."""
    by_suffix: Dict[str, Dict[str, Path]] = {".txt": {}, ".ann": {}}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix in by_suffix and path.is_file():
            if path.stem in by_suffix[suffix]:
                raise CorpusError(f"{path}: two files named '{path.stem}' with this suffix in "
                                  "different letter cases")
            by_suffix[suffix][path.stem] = path
    return by_suffix[".txt"], by_suffix[".ann"]


def _read_ann(ann_path: Path, ann: str, text: str, problems: Problems) -> Iterator[SpanRecord]:
    for lineno, line in enumerate(split_lines(ann), start=1):
        where = f"{ann_path}:{lineno}"
        if not line.startswith("T"):
            continue
        parts = line.split("\t", 2)  # the annotated string may itself hold a tab
        if len(parts) != 3:
            problems.add("malformed_line", where, "expected 'ID<TAB>LABEL START END<TAB>TEXT'")
            continue
        fields = parts[1].split(" ")
        if ";" in parts[1]:
            problems.add("discontinuous_span", where, "discontinuous span cannot be one entity")
            continue
        if len(fields) != 3 or not fields[0] or not all(OFFSET.fullmatch(f) for f in fields[1:]):
            problems.add("malformed_line", where,
                         "expected 'LABEL START END' in the second field (a label, two ASCII numbers)")
            continue
        label, start, end = fields[0], int(fields[1]), int(fields[2])
        if end > len(text) or start >= end:
            problems.add(
                "offset_out_of_range",
                where,
                f"span {start}-{end} is empty or past the end of the text ({len(text)} characters)",
            )
            continue
        if text[start:end] != parts[2]:
            problems.add(
                "text_mismatch",
                where,
                f"the text at {start}-{end} does not match the annotated string "
                "(wrong offsets, or a byte-order mark read with utf-8-sig?)",
            )
            continue
        yield SpanRecord(start, end, label, where)
