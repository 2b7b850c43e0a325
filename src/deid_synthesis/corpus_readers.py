"""Readers for the formats annotated clinical corpora come in, into one record shape.

BRAT standoff folders (MEDDOCAN), token-per-line CoNLL files (the Swedish NER corpus) and
JSONL with character spans (annotation tools) all become `Record`s: a text and its
character spans, each span remembering the file and line it came from. Malformed input
raises `CorpusError` naming the file and line; with `lenient=True` the bad item is skipped
and counted in `Problems` instead. Texts and span strings never appear in messages.
"""
import codecs
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

OUTSIDE_TAGS = {"O", "0", "_", ""}
# BRAT offsets: ASCII digits only (str.isdigit accepts '²' and other digits int() refuses),
# and few enough of them that int() never meets Python's digit limit.
OFFSET = re.compile(r"[0-9]{1,15}")
# Keys annotation tools put character spans under, when they are not under "spans".
SPAN_KEYS = {"start", "end", "start_offset", "end_offset", "begin", "startOffset", "endOffset",
             "start_char", "end_char"}


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
        self.count(kind, where)

    def count(self, kind: str, where: str) -> None:
        self.counts[kind] += 1
        self.where.setdefault(kind, []).append(where)


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
        text = read_or_skip(txt_path, problems, encoding)
        ann = None if text is None else read_or_skip(ann_path, problems, encoding)
        if ann is None:
            continue
        spans = list(_read_ann(ann_path, ann, text, problems))
        yield check_spans(Record(txt_path.stem, text, spans, str(txt_path)), problems)


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


# --- CoNLL token-per-line -------------------------------------------------------------


def parse_tag(tag: str, scheme: str) -> tuple:
    """Split a tag into (prefix, label): 'B-PER' -> ('B', 'PER'); IO 'PER' -> ('I', 'PER')."""
    if tag in OUTSIDE_TAGS:
        return "O", ""
    # Messages name the prefix, never the tag: a misformatted line ('Juan Pérez') puts a
    # word of the text in the tag column.
    if len(tag) >= 2 and tag[1] in "-_" and tag[0] in "BIELUS":
        prefix, label = tag[0], tag[2:]
        if not label:
            raise ValueError(f"tag has a '{tag[:2]}' prefix but no label")
        prefix = {"E": "L", "S": "U"}.get(prefix, prefix)
        if scheme == "io" and prefix != "I":
            raise ValueError(f"tag with prefix '{tag[0]}' is not an IO tag")
        if scheme == "bio" and prefix not in "BI":
            raise ValueError(f"tag with prefix '{tag[0]}' is not a BIO tag")
        return prefix, label
    if scheme in ("bio", "bilou"):
        raise ValueError(f"tag has no {scheme.upper()} prefix (B-, I-, ...)")
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
    if sents_per_doc < 1:
        raise CorpusError(f"--sents-per-doc must be at least 1, not {sents_per_doc}")
    lines = split_lines(read_text(path, encoding).lstrip("\ufeff"))  # a BOM is no part of a token
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
    text = read_text(path, encoding).lstrip("\ufeff")  # a BOM before the first '{' is no JSON
    for lineno, line in enumerate(split_lines(text), start=1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        record = _jsonl_record(line, where, path.stem, text_field, problems)
        if record is not None:
            yield check_spans(record, problems)


def _jsonl_record(line: str, where: str, stem: str, text_field: str, problems: Problems) -> Optional[Record]:
    """One line's record, or None (counted) when the line is not a record."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        problems.add("malformed_line", where, f"invalid JSON ({err.msg}, column {err.colno})")
        return None
    except (ValueError, RecursionError) as err:  # a number past the digit limit; deep nesting
        problems.add("malformed_line", where, f"unreadable JSON ({type(err).__name__})")
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
        problems.add("malformed_line", where, f"no string field '{text_field}'")
        return None
    text = obj[text_field]
    record_id = obj.get("id", f"{stem}-{where.rsplit(':', 1)[1]}")
    if has_surrogates(text) or (isinstance(record_id, str) and has_surrogates(record_id)):
        problems.add("malformed_line", where, "text or id holds a lone surrogate (invalid Unicode)")
        return None
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        problems.add("malformed_line", where, "'id' must be a string or an integer")
        return None
    if "spans" not in obj:
        other = _span_like_key(obj)
        if other is not None:
            problems.add("spans_under_other_key", where,
                         f"no 'spans' list, but spans under {other}: rename it 'spans' "
                         "({'start', 'end', 'label'} objects)")
            return None
    elif not isinstance(obj["spans"], list):
        problems.add("malformed_line", where, "'spans' must be a list of {'start', 'end', 'label'} objects")
        return None
    spans = [s for i, span in enumerate(obj.get("spans", []))
             if (s := _jsonl_span(span, text, f"{where} span {i}", problems)) is not None]
    return Record(str(record_id), text, spans, where.rsplit(":", 1)[0])


def _is_offset(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _jsonl_span(span, text: str, where: str, problems: Problems) -> Optional[SpanRecord]:
    """A span object with integer offsets and a non-empty string label; no silent casts.

    int() used to take 3.7 as 3, true as 1, "5" as 5 and any label as str(label) ("None").
    """
    if not isinstance(span, dict) or not all(k in span for k in ("start", "end", "label")):
        problems.add("bad_span", where, "a span needs 'start', 'end' and 'label'")
        return None
    start, end, label = span["start"], span["end"], span["label"]
    if not (_is_offset(start) and _is_offset(end)):
        problems.add("bad_span", where, "a span's 'start' and 'end' must be integers")
        return None
    if not isinstance(label, str) or not label.strip() or has_surrogates(label):
        problems.add("bad_span", where, "a span's 'label' must be a non-empty string")
        return None
    if "text" in span and 0 <= start < end <= len(text) and text[start:end] != span["text"]:
        problems.add("text_mismatch", where, f"the text at {start}-{end} does not match the span's 'text'")
        return None
    return SpanRecord(start, end, label, where)


def _span_like_key(obj: dict) -> Optional[str]:
    """The key of a list that looks like spans (objects with offsets, or [start, end, label]).

    Named in the message only when it looks like a field name, never a value.
    """
    for key, value in obj.items():
        if key == "spans" or not isinstance(value, list) or not value:
            continue
        first = value[0]
        looks = (isinstance(first, dict) and SPAN_KEYS & set(first)) or (
            isinstance(first, list) and len(first) == 3 and all(_is_offset(v) for v in first[:2]))
        if looks:
            return f"'{key}'" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,30}", key) else "another key"
    return None


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
