"""Where the results go: an output folder, a JSONL output (a file or standard output), the
spans file, and standard input's one text.

A sink writes each document's result in input order and keeps the run's counts. A write that
fails (full disk, read-only folder) stops the run with the path named; what was written stays,
and the next run resumes after it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from tqdm import tqdm

from .errors import DeidError
from .sources import Item
from .summary import MAX_FAILURES_KEPT

PARTIAL_SUFFIX = ".partial"


def jsonl_bytes(row: Dict[str, Any]) -> bytes:
    """One JSON line; a value with a lone surrogate (kept from the input) is written escaped."""
    try:
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf8")
    except UnicodeEncodeError:
        return (json.dumps(row) + "\n").encode("utf8")


def replace_file(target: Path, data: bytes) -> None:
    """Write `target` through `.NAME.partial` beside it, then rename: the file is complete or absent.

    Not clinical_deid.io.atomic_path: its temporary names are random, and a run killed mid-write
    would leave one behind for good; this fixed name is overwritten by the run that resumes.
    """
    partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def open_output(path: Path, append: bool) -> BinaryIO:
    """An output file opened for writing (appending when resumed); DeidError naming it when it cannot be."""
    try:
        return path.open("ab" if append else "wb")
    except OSError as err:
        raise DeidError(f"cannot open {err.filename} for writing: {err.strerror or type(err).__name__}") from None


def write_text_output(data: bytes, output_path: str, stdout: Optional[BinaryIO] = None) -> None:
    """Standard input's one de-identified text to OUTPUT ("-": standard output)."""
    try:
        if output_path == "-":
            stream = stdout or sys.stdout.buffer
            stream.write(data)
            stream.flush()
        else:
            replace_file(Path(output_path), data)
    except OSError as err:
        raise DeidError(f"cannot write {err.filename or output_path}: {err.strerror or type(err).__name__}") from None


class Sink:
    """The results of a run, in input order, and its counts (`summary`, see summary.new_summary).

    spans_file (Optional[BinaryIO]): the spans file (one JSON line a document), if any.
    spans_name (str): its name, for messages.
    silent (bool): no warnings on stderr.
    """

    def __init__(self, summary: Dict[str, Any], spans_file: Optional[BinaryIO], spans_name: str,
                 silent: bool) -> None:
        self.summary, self.spans_file, self.spans_name, self.silent = summary, spans_file, spans_name, silent

    def write(self, handle: BinaryIO, name: Optional[str], data: bytes) -> None:
        try:
            handle.write(data)
        except OSError as err:
            raise self.stopped(name, err) from None

    def stopped(self, name: Optional[str], err: OSError) -> DeidError:
        """The error that stops the run after a failed write."""
        done = self.summary["documents"] + self.summary["failed"]
        return DeidError(f"cannot write {err.filename or name}: {err.strerror or type(err).__name__}. The run stopped; "
                         f"the {done:,} documents before are kept: fix it and run again (the run resumes)")

    def fail(self, item: Item, reason: str) -> None:
        """Count and report a failed document (its id and the reason, never its text)."""
        self.summary["failed"] += 1
        if len(self.summary["failures"]) < MAX_FAILURES_KEPT:
            self.summary["failures"].append({"id": item.id, "error": reason})
        if not self.silent:
            tqdm.write(f"⚠ {item.id}: {reason}", file=sys.stderr)
        self.write_failure(item, reason)

    def succeed(self, item: Item, text: str, spans: List[Dict[str, Any]], tokens: int) -> None:
        """Write a document's output (its spans first, so a finished document has them) and count it."""
        if self.spans_file:
            self.write(self.spans_file, self.spans_name, jsonl_bytes({"id": item.id, "spans": spans}))
            try:
                self.spans_file.flush()
            except OSError as err:
                raise self.stopped(self.spans_name, err) from None
        self.write_output(item, text)
        self.summary["documents"] += 1
        self.summary["tokens"] += tokens
        self.summary["entities"].update(span["label"] for span in spans)

    def write_failure(self, item: Item, reason: str) -> None:
        """What a failed document leaves in the output (nothing in a folder)."""

    def write_output(self, item: Item, text: str) -> None:
        raise NotImplementedError

    def handles(self) -> List[Tuple[Optional[BinaryIO], Optional[str], bool]]:
        """(file, name, close it: else only flush) of each output."""
        return [(self.spans_file, self.spans_name, True)]

    def close(self, quiet: bool = False) -> None:
        """Close (or flush) the outputs; a failing flush (full disk) is an error unless `quiet`."""
        error = None
        for handle, name, close in self.handles():
            if handle is None:
                continue
            try:
                handle.close() if close else handle.flush()
            except OSError as err:
                error = error or self.stopped(name, err)
        if error is not None and not quiet:
            raise error


class FolderSink(Sink):
    """Each document's output as a file of the output folder, at its input's relative path."""

    def __init__(self, summary: Dict[str, Any], out_dir: Path, spans_file: Optional[BinaryIO], spans_name: str,
                 encoding: str, silent: bool) -> None:
        super().__init__(summary, spans_file, spans_name, silent)
        self.out_dir, self.encoding = out_dir, encoding

    def write_output(self, item: Item, text: str) -> None:
        target = self.out_dir / item.path  # type: ignore[operator]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_file(target, text.encode(self.encoding))
        except OSError as err:
            raise self.stopped(str(target), err) from None


class JsonlSink(Sink):
    """One output line per input line: the record with its text de-identified, or the reason it
    failed (`_deid_error`), so that a resumed run can count the lines done."""

    def __init__(self, summary: Dict[str, Any], out_file: BinaryIO, out_name: str, spans_file: Optional[BinaryIO],
                 spans_name: str, text_field: str, id_field: str, silent: bool, close_out: bool) -> None:
        super().__init__(summary, spans_file, spans_name, silent)
        self.out_file, self.out_name, self.close_out = out_file, out_name, close_out
        self.text_field, self.id_field = text_field, id_field

    def write_failure(self, item: Item, reason: str) -> None:
        if item.index < 0:
            return
        row: Dict[str, Any] = {"_deid_error": reason}
        if item.record is not None and self.id_field in item.record:
            row[self.id_field] = item.record[self.id_field]
        elif item.id:
            row["_deid_id"] = item.id
        self.write(self.out_file, self.out_name, jsonl_bytes(row))
        if self.spans_file:
            self.write(self.spans_file, self.spans_name, jsonl_bytes({"id": item.id, "error": reason, "spans": None}))

    def write_output(self, item: Item, text: str) -> None:
        record = dict(item.record)  # type: ignore[arg-type]
        record[self.text_field] = text
        self.write(self.out_file, self.out_name, jsonl_bytes(record))

    def handles(self) -> List[Tuple[Optional[BinaryIO], Optional[str], bool]]:
        return [(self.out_file, self.out_name, self.close_out), *super().handles()]
