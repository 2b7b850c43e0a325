"""Where the notes come from: a folder of .txt files, JSONL lines (a file or standard input), or a
Parquet file (its rows as JSONL lines: `open_lines`).

Each source yields `Item`s in input order. A document that cannot be read (undecodable bytes,
a bad JSON line, no text field, a lone surrogate, a dangling link) is an `Item` with an `error`,
reported by the run with its id and kept in the output's line count; it never stops the run.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Optional, Tuple

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Item:
    """One input document.

    index (int): its position among the input's documents (-1: reported only, no output line).
    id (str): the id that messages and the spans file use (a relative path, a record's id field,
        or "line N").
    path (Optional[Path]): the relative path of a .txt input.
    text / record: the note, and the JSONL record it came in.
    error (Optional[str]): why it cannot go through the pipeline (None: it can).
    group (Optional[str]): doc._.deid_group: notes of one patient share a date shift.
    """

    index: int
    id: str
    path: Optional[Path] = None
    text: Optional[str] = None
    record: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    group: Optional[str] = None


def printable(value: str) -> str:
    """An id as it can be printed and written as UTF-8: lone surrogates (from JSON escapes) escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if _LONE_SURROGATE.search(value) else value


def text_problem(text: str, field: str = "text") -> Optional[str]:
    """Why a text cannot go through the pipeline (a lone surrogate breaks the tokenizer), or None.
    Says where, never what: the message goes to the error stream."""
    match = _LONE_SURROGATE.search(text)
    if match:
        return f"lone surrogate (an unpaired \\u escape) at character {match.start()} of {field}"
    return None


def too_large(text: str, max_doc_chars: int) -> Optional[str]:
    """The report of a note over `max_doc_chars` characters (None: it is not)."""
    if len(text) > max_doc_chars:
        return f"too large: {len(text):,} characters, over --max-doc-chars {max_doc_chars:,}; not processed"
    return None


def decode_problem(err: UnicodeDecodeError, encoding: str) -> str:
    """A decoding error said by position, without the bytes."""
    return f"cannot decode as {encoding}: {err.reason} at byte {err.start}"


def list_folder(folder: Path) -> Tuple[List[Path], List[Item]]:
    """The .txt files under `folder` and the ones that cannot be read as files: dangling links,
    link loops and unreadable folders, reported instead of silently skipped.

    folder (Path): the input folder.
    RETURNS (Tuple[List[Path], List[Item]]): the files (relative, sorted), the broken ones (failed Items).
    """
    files: List[Path] = []
    broken: List[Item] = []

    def unreadable(err: OSError) -> None:
        rel = Path(err.filename).relative_to(folder) if err.filename else Path(".")
        broken.append(Item(-1, rel.as_posix(), path=rel,
                           error=f"cannot list the folder: {err.strerror or type(err).__name__}"))

    for root, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            if not name.endswith(".txt"):
                continue
            path = Path(root) / name
            rel = path.relative_to(folder)
            if path.is_file():
                files.append(rel)
            elif path.is_symlink():
                broken.append(Item(-1, rel.as_posix(), path=rel,
                                   error="skipped: a dangling symbolic link or a link loop"))
    return sorted(files), sorted(broken, key=lambda item: item.id)


def read_folder(folder: Path, files: List[Path], encoding: str) -> Iterator[Item]:
    """The Items of `files` (relative to `folder`), read as `encoding`."""
    for index, rel in enumerate(files):
        item = Item(index, rel.as_posix(), path=rel)
        try:
            item.text = (folder / rel).read_bytes().decode(encoding)
            item.error = text_problem(item.text, "the file")
        except UnicodeDecodeError as err:
            item.error = decode_problem(err, encoding)
        except OSError as err:
            item.error = f"cannot read: {err.strerror or type(err).__name__}"
        yield item


def parse_line(raw: bytes, line_no: int, id_field: str, encoding: str) -> Tuple[str, Optional[Dict[str, Any]], Optional[str]]:
    """A JSONL line's (id, record, error): the id is the record's id field, else "line N".

    Parsed here rather than with clinical_deid.io.json_line: the error is written into the
    output line (`_deid_error`), so its wording is part of the output format, and a bad line
    is a failed document, not a stopped run. It says what and where, never the line's content.
    """
    doc_id = f"line {line_no}"
    try:
        record = json.loads(raw.decode(encoding))
    except UnicodeDecodeError as err:
        return doc_id, None, decode_problem(err, encoding)
    except json.JSONDecodeError as err:
        return doc_id, None, f"bad JSON: {err.msg} at character {err.pos}"
    except (ValueError, RecursionError) as err:
        return doc_id, None, f"bad JSON: {type(err).__name__}"
    if not isinstance(record, dict):
        return doc_id, None, "not a JSON object"
    if record.get(id_field) is not None:
        doc_id = printable(str(record[id_field]))
    return doc_id, record, None


def read_jsonl_items(lines: Iterable[bytes], text_field: str, id_field: str, skip: int, encoding: str,
                     group_field: Optional[str] = None) -> Iterator[Item]:
    """The Items of JSONL lines, blank lines left out, the first `skip` documents too (resumed).

    lines (Iterable[bytes]): the raw lines (a file or standard input opened in binary).
    text_field / id_field (str): the record's text and id fields.
    skip (int): documents already done.
    encoding (str): the lines' encoding.
    group_field (Optional[str]): the field whose value groups a patient's notes (date shifts).
    """
    index = 0
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        index += 1
        if index <= skip:
            continue
        doc_id, record, error = parse_line(raw, line_no, id_field, encoding)
        item = Item(index - 1, doc_id, record=record, error=error)
        if record is not None:
            if not isinstance(record.get(text_field), str):
                item.error = f"no text field {text_field!r}"
            else:
                item.text = record[text_field]
                item.error = text_problem(item.text, repr(text_field))
            if group_field and record.get(group_field) is not None:
                item.group = str(record[group_field])
        yield item


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def parquet_file(path: Path):
    """A pyarrow ParquetFile, or a DeidError that names the file (or says how to get pyarrow)."""
    from .errors import DeidError

    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DeidError("a Parquet input needs pyarrow: pip install 'clinical-deid[ray]' (or pyarrow)") from None
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # not Parquet, truncated: the file and the type, never content
        raise DeidError(f"cannot read {path} as Parquet: {type(err).__name__}") from None


def parquet_lines(path: Path, rows_per_batch: int = 1024) -> Iterator[bytes]:
    """A Parquet file's rows as JSONL lines, in file order (values JSON cannot hold, as strings).

    The lines are what a JSONL input would be, so reading, the output (one JSONL line per
    row) and the resume check (output lines against input lines) are those of a JSONL run.
    """
    for batch in parquet_file(path).iter_batches(batch_size=rows_per_batch):
        for row in batch.to_pylist():
            yield (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def open_lines(path: Path) -> ContextManager[Iterable[bytes]]:
    """The input's lines, to read once: a JSONL file's own, or a Parquet file's rows (`parquet_lines`)."""
    if is_parquet(path):
        return contextlib.nullcontext(parquet_lines(path))
    return path.open("rb")


def count_documents(path: Path) -> int:
    """The documents of a JSONL file (non-blank lines) or of a Parquet file (rows), for the progress bar."""
    if is_parquet(path):
        return parquet_file(path).metadata.num_rows
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())
