"""Resuming an interrupted run: what its outputs hold that can be kept, verified, never assumed.

A folder run's outputs appear complete or not at all (renamed into place), so an existing file
is done; its spans line is kept only when it matches that file. A JSONL run keeps as many
complete output lines as it can verify, byte for byte against the input line they claim to come
from (id, fields, spans), and cuts a partly written last line. Damage (NUL bytes from two runs at
once or a full disk, lines of another input) is refused with a DeidError, never kept.
"""
from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from wasabi import Printer

from .errors import DeidError
from .paths import inside
from .sources import open_lines, parse_line, printable


def complete_lines(path: Path) -> List[int]:
    """Byte offset after each complete line of `path` (a partial last line has none)."""
    ends: List[int] = []
    if not path.exists():
        return ends
    with path.open("rb") as data:
        pos = 0
        for chunk in iter(lambda: data.read(1 << 20), b""):
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                if newline < 0:
                    break
                ends.append(pos + newline + 1)
                start = newline + 1
            pos += len(chunk)
    return ends


def truncate_lines(path: Path, n: int, ends: List[int]) -> None:
    """Keep the first `n` complete lines of `path` (cuts a partially written last line)."""
    if path.exists():
        with path.open("rb+") as data:
            data.truncate(ends[n - 1] if n else 0)


def first_lines(path: Path, n: int) -> Iterator[bytes]:
    """The first `n` lines of `path`, as bytes."""
    with path.open("rb") as data:
        for _ in range(n):
            yield data.readline()


def fields_except_text(record: Dict[str, Any], text_field: str) -> str:
    """A record's fields other than the text, as one comparable string."""
    return json.dumps({k: v for k, v in record.items() if k != text_field}, sort_keys=True)


def spans_problem(spans_line: bytes, doc_id: Optional[str], out_text: Optional[str]) -> Optional[str]:
    """Why a spans line does not belong to the document `doc_id` (and its output text), or None."""
    try:
        row = json.loads(spans_line)
    except (ValueError, RecursionError):
        return "the spans line is no JSON"
    if not isinstance(row, dict) or (doc_id is not None and row.get("id") != doc_id):
        return "the spans line is of another document"
    for span in row.get("spans") or ():
        try:
            if out_text is not None and out_text[span["out_start"]:span["out_end"]] != span["replacement"]:
                return "the spans do not match the output text"
        except (KeyError, TypeError):
            return "a span without output offsets"
    return None


def line_problem(in_raw: Optional[bytes], line_no: int, out_line: bytes, spans_line: Optional[bytes],
                 text_field: str, id_field: str, encoding: str) -> Optional[str]:
    """Why a kept output line (and its spans line) is not what this input's line gives, or None.
    `in_raw` is None when the input is standard input: only the outputs are checked then."""
    if b"\0" in out_line or (spans_line is not None and b"\0" in spans_line):
        return "NUL bytes (two runs wrote at once, or the disk filled)"
    doc_id, record = None, None
    if in_raw is not None:
        doc_id, record, _ = parse_line(in_raw, line_no, id_field, encoding)
    try:
        row = json.loads(out_line)
    except (ValueError, RecursionError):
        return "not a JSON line"
    if not isinstance(row, dict):
        return "not a JSON object"
    out_text = None
    if "_deid_error" in row:
        out_id = row.get("_deid_id") if id_field not in row else printable(str(row[id_field]))
        if in_raw is not None and out_id != doc_id:
            return f"the line is of document {out_id!r}, the input's is {doc_id!r}"
    else:
        if in_raw is not None and (
                record is None or fields_except_text(record, text_field) != fields_except_text(row, text_field)):
            return f"the line's fields are not those of the input's document {doc_id!r}"
        out_text = row.get(text_field)
    if spans_line is not None:
        return spans_problem(spans_line, doc_id, out_text if isinstance(out_text, str) else None)
    return None


def resume_point(source: Optional[Path], out_path: Path, spans_path: Optional[Path], text_field: str, id_field: str,
                 encoding: str) -> int:
    """Lines a JSONL run can keep: the complete lines of both outputs, each checked against its
    input line (ids, fields, spans); a partly written last line is cut.

    source (Optional[Path]): the input file (None: standard input, outputs checked alone).
    out_path (Path): the JSONL output.
    spans_path (Optional[Path]): the spans file, if any.
    RETURNS (int): the documents kept. Raises DeidError on damage or foreign content.
    """
    out_ends = complete_lines(out_path)
    spans_ends = complete_lines(spans_path) if spans_path else out_ends
    keep = min(len(out_ends), len(spans_ends))
    with (open_lines(source) if source else contextlib.nullcontext(None)) as lines:
        numbered = (((no, raw) for no, raw in enumerate(lines, 1) if raw.strip()) if lines
                    else zip(itertools.count(1), itertools.repeat(None)))
        spans_lines: Iterable[Optional[bytes]] = first_lines(spans_path, keep) if spans_path else itertools.repeat(None)
        checked = 0
        for (line_no, in_raw), out_line, spans_line in zip(numbered, first_lines(out_path, keep), spans_lines):
            problem = line_problem(in_raw, line_no, out_line, spans_line, text_field, id_field, encoding)
            if problem:
                raise DeidError(
                    f"cannot resume {out_path}: its line {checked + 1} does not match input line {line_no} ({problem}). "
                    f"Delete it{' and ' + str(spans_path) if spans_path else ''}, or run again with --no-resume")
            checked += 1
    if checked < keep:
        raise DeidError(f"cannot resume {out_path}: it has more lines than the input {source} has documents "
                        "(another input's output?). Delete it, or run again with --no-resume")
    truncate_lines(out_path, keep, out_ends)
    if spans_path:
        truncate_lines(spans_path, keep, spans_ends)
    return keep


def keep_finished_spans(spans_path: Path, out_dir: Path, encoding: str = "utf-8") -> Tuple[Set[str], int]:
    """Before a folder run resumes: keep the spans lines of documents whose output exists and
    matches them; drop the others (a cut last line, NUL bytes, duplicates, lines of a missing or
    different output), whose documents are done again. Rewritten in place: the file stays the
    one this run has locked.

    RETURNS (Tuple[Set[str], int]): the kept ids, the number of dropped lines.
    """
    seen: Set[str] = set()
    kept: List[bytes] = []
    dropped = 0
    with spans_path.open("rb") as lines:
        for line in lines:
            doc_id = None
            if line.endswith(b"\n") and b"\0" not in line:
                with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
                    doc_id = json.loads(line)["id"]
            target = out_dir / doc_id if isinstance(doc_id, str) and doc_id not in seen else None
            if target is not None and inside(target, out_dir) and target.is_file():
                try:
                    out_text = target.read_bytes().decode(encoding)
                except (OSError, UnicodeDecodeError):
                    out_text = None
                if out_text is not None and spans_problem(line, doc_id, out_text) is None:
                    seen.add(doc_id)  # type: ignore[arg-type]
                    kept.append(line)
                    continue
            dropped += 1
    with spans_path.open("r+b") as rewritten:
        rewritten.write(b"".join(kept))
        rewritten.truncate()
    return seen, dropped


def folder_done(files: List[Path], out_dir: Path, spans_path: Optional[Path], encoding: str,
                msg: Printer) -> Set[Path]:
    """The input files (relative) whose output an earlier run finished (and, with a spans file,
    whose spans line it kept); the others are done again."""
    done = {rel for rel in files if (out_dir / rel).exists()}
    if spans_path is not None:
        kept, dropped = keep_finished_spans(spans_path, out_dir, encoding)
        if dropped:
            msg.warn(f"{spans_path}: {dropped:,} spans lines were cut, damaged or without their output; "
                     "those documents are done again")
        done = {rel for rel in done if rel.as_posix() in kept}
    return done
