"""Readers for the formats annotated clinical corpora come in, into one record shape.

BRAT standoff folders (MEDDOCAN), token-per-line CoNLL files (the Swedish NER corpus) and
JSONL with character spans (annotation tools) all become `Record`s: a text and its
character spans, each span remembering the file and line it came from. Malformed input
raises `CorpusError` naming the file and line; with `lenient=True` the bad item is skipped
and counted in `Problems` instead. Texts and span strings never appear in messages.
"""
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

OUTSIDE_TAGS = {"O", "0", "_", ""}


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


@dataclass
class Problems:
    """Malformed items: raised at once, or (lenient) skipped and counted by kind."""

    lenient: bool = False
    counts: Counter = field(default_factory=Counter)
    where: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str, detail: str) -> None:
        if not self.lenient:
            raise CorpusError(f"{where}: {detail} (use --lenient to skip and count such items)")
        self.counts[kind] += 1
        self.where.setdefault(kind, []).append(where)


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


def check_spans(record: Record, problems: Problems) -> Record:
    """Drop (lenient) or reject spans outside the text, empty, or overlapping another."""
    kept: List[SpanRecord] = []
    for span in sorted(record.spans, key=lambda s: (s.start, s.end)):
        if span.start < 0 or span.end > len(record.text) or span.start >= span.end:
            problems.add(
                "offset_out_of_range",
                span.where,
                f"span {span.start}-{span.end} is empty or outside the text "
                f"({len(record.text)} characters)",
            )
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


# --- BRAT standoff --------------------------------------------------------------------


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
    txt_files = sorted(folder.glob("*.txt"))
    if not txt_files:
        raise CorpusError(f"{folder}: no .txt files found")
    for txt_path in txt_files:
        ann_path = txt_path.with_suffix(".ann")
        if not ann_path.exists():
            problems.add("missing_ann", str(txt_path), "no .ann file beside this .txt")
            continue
        text = read_text(txt_path, encoding)
        spans = list(_read_ann(ann_path, text, problems, encoding))
        yield check_spans(Record(txt_path.stem, text, spans, str(txt_path)), problems)


def _read_ann(ann_path: Path, text: str, problems: Problems, encoding: str) -> Iterator[SpanRecord]:
    for lineno, line in enumerate(read_text(ann_path, encoding).splitlines(), start=1):
        where = f"{ann_path}:{lineno}"
        if not line.startswith("T"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            problems.add("malformed_line", where, "expected 'ID<TAB>LABEL START END<TAB>TEXT'")
            continue
        fields = parts[1].split(" ")
        if ";" in parts[1]:
            problems.add("discontinuous_span", where, "discontinuous span cannot be one entity")
            continue
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            problems.add("malformed_line", where, "expected 'LABEL START END' in the second field")
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


# --- CoNLL token-per-line -------------------------------------------------------------


def parse_tag(tag: str, scheme: str) -> tuple:
    """Split a tag into (prefix, label): 'B-PER' -> ('B', 'PER'); IO 'PER' -> ('I', 'PER')."""
    if tag in OUTSIDE_TAGS:
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIELUS":
        prefix, label = tag[0], tag[2:]
        prefix = {"E": "L", "S": "U"}.get(prefix, prefix)
        if scheme == "io" and prefix != "I":
            raise ValueError(f"tag '{tag}' is not an IO tag")
        if scheme == "bio" and prefix not in "BI":
            raise ValueError(f"tag '{tag}' is not a BIO tag")
        return prefix, label
    if scheme in ("bio", "bilou"):
        raise ValueError(f"tag '{tag}' has no {scheme.upper()} prefix")
    return "I", tag


def read_conll(
    path: Path,
    problems: Problems,
    scheme: str = "auto",
    sents_per_doc: int = 10,
    encoding: str = "utf-8",
) -> Iterator[Record]:
    """Token-per-line files: `token<TAB>tag` (or space-separated), blank line between sentences.

    IO tags cannot separate two adjacent entities of one type; they become one entity.
    Sentences are grouped into documents of `sents_per_doc`, tokens joined by spaces.
    """
    path = Path(path)
    if scheme not in ("auto", "io", "bio", "bilou"):
        raise CorpusError(f"unknown tag scheme '{scheme}': use auto, io, bio or bilou")
    lines = read_text(path, encoding).splitlines()
    sentences: List[List[tuple]] = []
    current: List[tuple] = []
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("-DOCSTART-"):
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) < 2 or not fields[0]:
            problems.add("missing_tag", f"{path}:{lineno}", "line has a token but no tag")
            continue
        current.append((fields[0], fields[-1], lineno))
    if current:
        sentences.append(current)
    for n, start in enumerate(range(0, len(sentences), sents_per_doc)):
        yield _conll_record(path, n, sentences[start : start + sents_per_doc], scheme, problems)


def _conll_record(path: Path, n: int, sentences, scheme: str, problems: Problems) -> Record:
    words: List[str] = []
    offsets: List[int] = []
    sent_starts: List[int] = []
    spans: List[SpanRecord] = []
    pos = 0
    open_span: Optional[List] = None  # [start, end, label, where]

    def close() -> None:
        nonlocal open_span
        if open_span is not None:
            spans.append(SpanRecord(*open_span))
            open_span = None

    for sentence in sentences:
        close()
        sent_starts.append(pos)
        for token, tag, lineno in sentence:
            where = f"{path}:{lineno}"
            try:
                prefix, label = parse_tag(tag, scheme)
            except ValueError as err:
                problems.add("bad_tag", where, str(err))
                prefix, label = "O", ""
            start, end = pos, pos + len(token)
            continues = open_span is not None and open_span[2] == label and prefix in ("I", "L")
            if continues:
                open_span[1] = end
            else:
                close()
                if prefix != "O":
                    open_span = [start, end, label, where]
            if prefix in ("L", "U"):
                close()
            words.append(token)
            offsets.append(start)
            pos = end + 1
    close()
    text = " ".join(words)
    return Record(f"{path.stem}-{n:05d}", text, spans, str(path), sent_starts)


# --- JSONL with character spans -------------------------------------------------------


def read_jsonl(
    path: Path, problems: Problems, text_field: str = "text", encoding: str = "utf-8"
) -> Iterator[Record]:
    """One JSON object per line: {"text": ..., "spans": [{"start", "end", "label"}], "id"?}.

    A span that carries its own "text" is checked against the document's text.
    """
    path = Path(path)
    for lineno, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problems.add("malformed_line", where, f"invalid JSON ({err.msg}, column {err.colno})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
            problems.add("malformed_line", where, f"no string field '{text_field}'")
            continue
        text = obj[text_field]
        spans = []
        for i, span in enumerate(obj.get("spans") or []):
            span_where = f"{where} span {i}"
            try:
                start, end, label = int(span["start"]), int(span["end"]), str(span["label"])
            except (KeyError, TypeError, ValueError):
                problems.add("malformed_line", span_where, "a span needs integer 'start', 'end' and a 'label'")
                continue
            if "text" in span and 0 <= start < end <= len(text) and text[start:end] != span["text"]:
                problems.add("text_mismatch", span_where, f"the text at {start}-{end} does not match the span's 'text'")
                continue
            spans.append(SpanRecord(start, end, label, span_where))
        record_id = str(obj.get("id", f"{path.stem}-{lineno}"))
        yield check_spans(Record(record_id, text, spans, str(path)), problems)


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
    if fmt == "brat":
        return read_brat(path, problems, encoding)
    if fmt == "conll":
        return read_conll(path, problems, tag_scheme, sents_per_doc, encoding)
    if fmt == "jsonl":
        return read_jsonl(path, problems, text_field, encoding)
    raise CorpusError(f"unknown format '{fmt}': use brat, conll or jsonl")
