"""The one record shape every corpus reader yields, and what the readers share.

BRAT standoff folders (MEDDOCAN, `brat.py`), token-per-line CoNLL files (the Swedish NER
corpus, `conll.py`) and JSONL with character spans (annotation tools, `jsonl.py`) all become
`Record`s: a text and its character spans, each span remembering the file and line it came
from. Malformed input raises `CorpusError` naming the file and line; with `lenient=True` the
bad item is skipped and counted in `Problems` instead. Texts and span strings never appear
in messages.
"""
import codecs
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional


class CorpusError(ValueError):
    """Malformed input; the message names the file and line."""


@dataclass
class SpanRecord:
    start: int
    end: int
    label: str
    where: str  # "path:line", for reports


@dataclass
class Record:
    id: str
    text: str
    spans: List[SpanRecord]
    source: str
    sent_starts: Optional[List[int]] = None  # character offsets, when the format gives sentences
    where: Optional[str] = None  # "path:line" of the record, when the format has one a line


@dataclass
class Problems:
    """Malformed items: raised at once, or (lenient) skipped and counted by kind.

    Items that are read but repaired or suspicious are `noted` by kind and place (under
    --lenient or not), and `warnings` holds the messages a reader wants printed loudly.
    """

    lenient: bool = False
    counts: Counter = field(default_factory=Counter)
    where: Dict[str, List[str]] = field(default_factory=dict)
    noted: Dict[str, List[str]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def add(self, kind: str, where: str, detail: str) -> None:
        if not self.lenient:
            raise CorpusError(f"{where}: {detail} (use --lenient to skip and count such items)")
        self.count(kind, where)

    def count(self, kind: str, where: str) -> None:
        self.counts[kind] += 1
        self.where.setdefault(kind, []).append(where)

    def note(self, kind: str, where: str) -> None:
        """Record a repaired or suspicious item (not skipped), e.g. a span's trimmed space."""
        self.noted.setdefault(kind, []).append(where)


def split_lines(text: str) -> List[str]:
    """Lines as editors and line-based formats count them: at '\n' only, a trailing '\r' dropped.

    str.splitlines() also splits at '\x0b', '\x0c', '\x1c'-'\x1e', '\x85', '\u2028' and
    '\u2029', which JSON strings (written with ensure_ascii=False) and BRAT annotated strings
    may hold: it broke valid records in two and put every later line number off.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def has_surrogates(value: str) -> bool:
    """Lone surrogates (from JSON '\\ud800' escapes) cannot be encoded: spaCy fails on them."""
    return any("\ud800" <= c <= "\udfff" for c in value)


def check_encoding(path: Path, encoding: str) -> None:
    """An unknown encoding is an error of the whole input, not of one file (even lenient)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"{path}: unknown encoding '{encoding}'") from None


def read_or_skip(path: Path, problems: Problems, encoding: str) -> Optional[str]:
    """read_text, but under --lenient an undecodable file is skipped and counted."""
    try:
        return read_text(path, encoding)
    except CorpusError:
        if not problems.lenient:
            raise
        problems.count("undecodable_file", str(path))
        return None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole file; a decoding error names the file, line and byte.

    MEDDOCAN trap: some files start with a byte-order mark that BRAT offsets count as one
    character, so decode with plain utf-8 (never utf-8-sig) and keep it.
    """
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not valid {encoding} (byte {err.start}); "
            f"pass the file's encoding with --encoding"
        ) from None
    except LookupError:
        raise CorpusError(f"{path}: unknown encoding '{encoding}'") from None


def trim_span(span: SpanRecord, text: str, problems: Problems) -> SpanRecord:
    """A span with white space at an edge, trimmed to the characters it names (and noted).

    (Issue 12: a span with a leading space was dropped as misaligned and reported twice.)
    """
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if (start, end) == (span.start, span.end) or start == end:
        return span
    problems.note("trimmed_whitespace", span.where)
    return SpanRecord(start, end, span.label, span.where)


def check_spans(record: Record, problems: Problems) -> Record:
    """Drop (lenient) or reject spans outside the text, empty, white space only, or
    overlapping another; trim white space at a span's edges."""
    kept: List[SpanRecord] = []
    in_text = [s for s in record.spans if 0 <= s.start < s.end <= len(record.text)]
    spans = [trim_span(s, record.text, problems) for s in in_text] + [
        s for s in record.spans if not 0 <= s.start < s.end <= len(record.text)]
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.start < 0 or span.end > len(record.text) or span.start >= span.end:
            problems.add(
                "offset_out_of_range",
                span.where,
                f"span {span.start}-{span.end} is empty or outside the text "
                f"({len(record.text)} characters)",
            )
        elif record.text[span.start:span.end].isspace():
            problems.add("whitespace_span", span.where,
                         f"span {span.start}-{span.end} covers white space only")
        elif kept and span.start < kept[-1].end:
            problems.add(
                "overlapping_span",
                span.where,
                f"span {span.start}-{span.end} overlaps the span at {kept[-1].where}",
            )
        else:
            kept.append(span)
    record.spans = kept
    return record
