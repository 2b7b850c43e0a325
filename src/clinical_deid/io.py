"""The project's one JSONL reader, one DocBin reader and one atomic writer.

Every step reads and writes through these so that a bad file is reported the same way
everywhere (the file and the line, the exception type, never the text of a note) and an
interrupted step never leaves a half-written output behind.

The JSONL reader is hand-written rather than srsly.read_jsonl: srsly's errors quote the
offending line, which may be a patient's note.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

PathLike = Union[str, Path]


class DataError(ValueError):
    """A file that cannot be read as expected; the message names the file and the place only."""


def json_line(line: Union[str, bytes], where: str) -> Any:
    """One JSON value of a JSONL line. DataError(where: type of problem) when it is none:
    the message carries the position, never the line's text."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: invalid JSON ({err.msg}, column {err.colno})") from None
    except (ValueError, RecursionError) as err:  # bad UTF-8, a number past the digit limit, deep nesting
        raise DataError(f"{where}: unreadable JSON ({type(err).__name__})") from None


def read_jsonl(path: PathLike, text_field: Optional[str] = "text",
               encoding: str = "utf-8") -> Iterator[Tuple[str, str, Dict[str, Any]]]:
    """Yield (where, raw line, record) for each non-blank line of a JSONL file.

    path (PathLike): the file.
    text_field (Optional[str]): a field every record must hold as a string (None: no check).
    encoding (str): the file's encoding.
    RETURNS (Iterator[Tuple[str, str, Dict[str, Any]]]): "file:line", the line, the object.
    Raises DataError naming the file and line for a missing file, undecodable bytes, a line
    that is not a JSON object, or a record without the text field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(encoding=encoding, newline="\n") as lines:
        line_no = 0
        while True:
            line_no += 1
            where = f"{path}:{line_no}"
            try:
                line = lines.readline()
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not {encoding} (byte {err.start} of the line's chunk)") from None
            if not line:
                return
            if not line.strip():
                continue
            record = json_line(line, where)
            if not isinstance(record, dict):
                raise DataError(f"{where}: not a JSON object")
            if text_field is not None and not isinstance(record.get(text_field), str):
                raise DataError(f"{where}: no string field '{text_field}'")
            yield where, line, record


def read_docbin(path: PathLike, vocab: Optional[Vocab] = None) -> List[Doc]:
    """All documents of a DocBin (.spacy).

    path (PathLike): the file.
    vocab (Optional[Vocab]): the vocab to build the docs with (a pipeline's, to keep its
        strings); a new one when None.
    RETURNS (List[Doc]): the documents, in order.
    Raises DataError naming the file when it is missing or not a DocBin.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such DocBin")
    try:
        return list(DocBin().from_disk(path).get_docs(vocab if vocab is not None else Vocab()))
    except Exception as err:  # noqa: BLE001  (srsly/msgpack errors have many types)
        raise DataError(f"{path}: not a readable DocBin ({type(err).__name__})") from None


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside PATH that replaces PATH when the block ends without error
    (and is removed when it fails): readers see the old file or the new one, never half.

    path (PathLike): the final file (its folder is created).
    RETURNS (Iterator[Path]): the temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; the file gets the mode `open` would give it
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator[IO]:
    """`open` for writing through `atomic_path`: the file appears complete or not at all."""
    binary = "b" in mode
    with atomic_path(path) as tmp, tmp.open(mode, encoding=None if binary else encoding) as handle:
        yield handle


def write_text(path: PathLike, text: str) -> Path:
    """Write TEXT (UTF-8) to PATH atomically; returns PATH."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def write_docbin(docs: Union[DocBin, List[Doc]], path: PathLike) -> Path:
    """Write documents (or a DocBin) to PATH atomically; returns PATH."""
    docbin = docs if isinstance(docs, DocBin) else DocBin(docs=docs, store_user_data=True)
    with atomic_path(path) as tmp:
        docbin.to_disk(tmp)
    return Path(path)


def write_jsonl(rows, path: PathLike) -> Path:
    """Write dicts as JSON lines (UTF-8, non-ASCII kept) to PATH atomically; returns PATH."""
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)
