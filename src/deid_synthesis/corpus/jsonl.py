"""JSONL with character spans (annotation tools): {"text", "spans": [{"start", "end", "label"}], "id"?}.

Lines are parsed by the project's one JSON-line parser (`clinical_deid.io.json_line`); what
a line may hold is checked here, so that a bad line is skipped and counted under --lenient
instead of stopping the run.
"""
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from clinical_deid.io import DataError, json_line
from deid_synthesis.corpus.records import (
    Problems,
    Record,
    SpanRecord,
    check_spans,
    has_surrogates,
    read_text,
    split_lines,
)

# Keys a record may hold besides its text and spans; keys starting with "_" (Prodigy's
# hashes and session ids) are ignored too. Any other key is listed in a warning.
KNOWN_KEYS = {"spans", "id", "meta", "tokens", "answer"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}")  # a key named in a message: a field name, never text

# Keys annotation tools put character spans under, when they are not under "spans".
SPAN_KEYS = {"start", "end", "start_offset", "end_offset", "begin", "startOffset", "endOffset",
             "start_char", "end_char"}


def read_jsonl(
    path: Path, problems: Problems, text_field: str = "text", encoding: str = "utf-8"
) -> Iterator[Record]:
    """One JSON object per line: {"text": ..., "spans": [{"start", "end", "label"}], "id"?}.

    A span that carries its own "text" is checked against the document's text.
    """
    path = Path(path)
    text = read_text(path, encoding).lstrip("\ufeff")  # a BOM before the first '{' is no JSON
    first_use: Dict[str, str] = {}  # record id -> where it was first used
    unknown = _UnknownKeys()
    for lineno, line in enumerate(split_lines(text), start=1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        record = _jsonl_record(line, where, path.stem, text_field, problems, unknown)
        if record is None:
            continue
        if record.id in first_use:  # (issue 12: duplicate sample ids in generation, one lost on resume)
            problems.add("duplicate_id", where, f"this record's id was already used at {first_use[record.id]}")
            continue
        first_use[record.id] = where
        yield check_spans(record, problems)
    problems.warnings.extend(unknown.warnings(path))


class _UnknownKeys:
    """Keys no reader uses, by first place: they often hold what the user meant as spans."""

    def __init__(self) -> None:
        self.first: Dict[str, str] = {}
        self.unnamed = 0

    def add(self, obj: dict, text_field: str, where: str) -> None:
        for key in obj:
            if key == text_field or key in KNOWN_KEYS or key.startswith("_"):
                continue
            if NAME.fullmatch(key):
                self.first.setdefault(key, where)
            else:
                self.unnamed += 1

    def warnings(self, path: Path) -> List[str]:
        if not self.first and not self.unnamed:
            return []
        named = ", ".join(f"'{key}' (first at {where})" for key, where in sorted(self.first.items()))
        unnamed = f"{self.unnamed} key(s) that are not field names" if self.unnamed else ""
        return [f"{path}: keys no reader uses were ignored: {', '.join(p for p in (named, unnamed) if p)}; "
                "spans belong under 'spans', the text under the --text-field"]


def _jsonl_record(line: str, where: str, stem: str, text_field: str, problems: Problems,
                  unknown: _UnknownKeys) -> Optional[Record]:
    """One line's record, or None (counted) when the line is not a record."""
    try:
        obj = json_line(line, where)
    except DataError as err:  # its message is "where: what", the position only
        problems.add("malformed_line", where, str(err).removeprefix(f"{where}: "))
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
        else:  # (issue 12: such records converted to a corpus without entities)
            problems.add("no_spans", where, "no 'spans' list: write \"spans\": [] for a note without PHI")
        return None
    elif not isinstance(obj["spans"], list):
        problems.add("malformed_line", where, "'spans' must be a list of {'start', 'end', 'label'} objects")
        return None
    unknown.add(obj, text_field, where)
    spans = [s for i, span in enumerate(obj["spans"])
             if (s := _jsonl_span(span, text, f"{where} span {i}", problems)) is not None]
    return Record(str(record_id), text, spans, where.rsplit(":", 1)[0], where=where)


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
