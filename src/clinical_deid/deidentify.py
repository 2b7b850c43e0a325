"""De-identify clinical notes with a pipeline: the production command.

    python -m clinical_deid.deidentify MODEL INPUT OUTPUT [--text-field text] [--id-field id]
        [--spans-output spans.jsonl] [--batch-size 64] [--n-process 1]
        [--mode redact|mask|pseudonymize] [--no-rules] [--seed 0] [--no-resume]
        [--key-file KEY [--create-key] | --insecure-demo-key] [--patient-id-field patient]
        [--max-chars 100000] [--max-doc-chars 10000000]
    python -m clinical_deid.deidentify MODEL --new-key-file KEY      (writes a new secret key)

INPUT is a folder of .txt files (OUTPUT: the same tree, de-identified), a .jsonl file (the
text field is replaced, other fields are kept; OUTPUT: a .jsonl file, one line per input
line) or ``-`` for standard input (JSONL, or one text with ``--stdin-format text``; OUTPUT
may be ``-`` for standard output). MODEL is a trained pipeline (a folder or an installed
package); ``deid_rules`` and ``deid_transform`` are added after its last component when it
has no ``deid_transform`` yet. The command never writes over its input, reports a document
that fails (unreadable file, bad JSON line, component error) with its id and goes on, and
resumes an interrupted run: a folder's output files are written to a temporary name and
renamed, so any output that exists is complete and is skipped; a JSONL output's complete
lines are verified against the input (ids, fields, spans) and as many inputs are skipped;
damage (NUL bytes, lines of another input, two runs at once) is refused, never kept. A run
holds an exclusive lock on its outputs: a second run on the same output stops at once.

Pseudonymization draws surrogates with a secret key (``--key-file`` or the environment
variable ``DEID_SURROGATE_KEY``; never logged): with it, a real value gets the same surrogate
in every note of the run, and notes with the same ``--patient-id-field`` share their date
shift. Without a key the command refuses to pseudonymize unless ``--insecure-demo-key`` is
given (surrogates anyone with the pipeline can re-draw). Notes longer than ``--max-chars``
are cut at line breaks or spaces and de-identified piece by piece (outputs and offsets are
joined back exactly); notes longer than ``--max-doc-chars`` are reported, not processed.
Messages name files, ids, offsets and exception types, never the text of a note.

Installed as the console script ``clinical-deid`` (and ``python -m clinical_deid``); a model
wheel needs no code of its own: ``clinical-deid es_deid_synth INPUT OUTPUT``.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import import_file, raise_error
from tqdm import tqdm
from wasabi import Printer

from .transform import load_key

try:  # exclusive locks on the outputs (POSIX); elsewhere a run takes none
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

# Documents per memory zone: strings that the tokenizer adds to the vocab while it reads a
# chunk are freed after it, so a run over millions of notes does not grow without bound.
CHUNK_SIZE = 10_000
PARTIAL_SUFFIX = ".partial"
KEY_ENV = "DEID_SURROGATE_KEY"
# A note longer than MAX_CHARS is cut into pieces (the tokenizer and the model see bounded
# texts); one longer than MAX_DOC_CHARS is reported as too large instead of processed.
MAX_CHARS = 100_000
MAX_DOC_CHARS = 10_000_000
STDIN_FORMATS = ("jsonl", "text")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class DeidError(ValueError):
    """A problem reported as one clean message: paths, ids, offsets, never a note's text."""


def ensure_registered() -> None:
    """Register the tokenizer and the components (an import; entry points do it for spaCy too)."""
    from . import rules, tokenizer, transform  # noqa: F401


def prepare_pipeline(nlp: Language, mode: Optional[str] = None, rules: bool = True,
                     seed: Optional[int] = None, rule_names: Optional[List[str]] = None) -> Language:
    """Add deid_rules and deid_transform when the pipeline lacks them; set mode and seed.
    rule_names: the rules deid_rules runs (e.g. those scripts/rules_effect.py found to help)."""
    ensure_registered()
    if rule_names is not None and "deid_rules" in nlp.pipe_names:
        raise ValueError("the pipeline has deid_rules already: its rules are in its config ([components.deid_rules])")
    if "deid_transform" not in nlp.pipe_names:
        if rules and "deid_rules" not in nlp.pipe_names:
            nlp.add_pipe("deid_rules", config={} if rule_names is None else {"rules": list(rule_names)})
        config: Dict[str, Any] = {"mode": mode or "pseudonymize"}
        if seed is not None:
            config["seed"] = seed
        nlp.add_pipe("deid_transform", config=config)
    else:
        transform = nlp.get_pipe("deid_transform")
        if mode:
            transform.mode = mode
        if seed is not None:
            transform.seed = seed
        if not rules and "deid_rules" in nlp.pipe_names:
            nlp.disable_pipe("deid_rules")
    return nlp


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


class Item:
    """One input document. (No dataclass: `spacy package` imports this file outside sys.modules.)"""

    __slots__ = ("index", "id", "text", "record", "path", "error", "group")

    def __init__(self, index: int, id: str, path: Optional[Path] = None) -> None:
        self.index = index
        self.id = id
        self.path = path  # relative path of a .txt input
        self.text: Optional[str] = None
        self.record: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None
        self.group: Optional[str] = None  # doc._.deid_group: notes of one patient share a date shift


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


def list_folder(folder: Path) -> Tuple[List[Path], List[Item]]:
    """The .txt files under `folder` (relative, sorted) and the ones that cannot be read as files:
    dangling links, link loops and unreadable folders, reported instead of silently skipped."""
    files: List[Path] = []
    broken: List[Item] = []

    def unreadable(e: OSError) -> None:
        rel = Path(e.filename).relative_to(folder) if e.filename else Path(".")
        item = Item(-1, rel.as_posix(), path=rel)
        item.error = f"cannot list the folder: {e.strerror or type(e).__name__}"
        broken.append(item)

    for root, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            if not name.endswith(".txt"):
                continue
            path = Path(root) / name
            rel = path.relative_to(folder)
            if path.is_file():
                files.append(rel)
            elif path.is_symlink():
                item = Item(-1, rel.as_posix(), path=rel)
                item.error = "skipped: a dangling symbolic link or a link loop"
                broken.append(item)
    return sorted(files), sorted(broken, key=lambda item: item.id)


def read_folder(folder: Path, files: List[Path], encoding: str) -> Iterator[Item]:
    for index, rel in enumerate(files):
        item = Item(index, rel.as_posix(), path=rel)
        try:
            item.text = (folder / rel).read_bytes().decode(encoding)
            item.error = text_problem(item.text, "the file")
        except UnicodeDecodeError as e:
            item.error = f"cannot decode as {encoding}: {e.reason} at byte {e.start}"
        except OSError as e:
            item.error = f"cannot read: {e.strerror or type(e).__name__}"
        yield item


def parse_line(raw: bytes, line_no: int, id_field: str, encoding: str) -> Tuple[str, Optional[Dict[str, Any]], Optional[str]]:
    """A JSONL line's (id, record, error): the id is the record's id field, else "line N".
    Errors say what and where (JSON's message and position), never the line's content."""
    doc_id = f"line {line_no}"
    try:
        record = json.loads(raw.decode(encoding))
    except UnicodeDecodeError as e:
        return doc_id, None, f"cannot decode as {encoding}: {e.reason} at byte {e.start}"
    except json.JSONDecodeError as e:
        return doc_id, None, f"bad JSON: {e.msg} at character {e.pos}"
    except (ValueError, RecursionError) as e:
        return doc_id, None, f"bad JSON: {type(e).__name__}"
    if not isinstance(record, dict):
        return doc_id, None, "not a JSON object"
    if record.get(id_field) is not None:
        doc_id = printable(str(record[id_field]))
    return doc_id, record, None


def read_jsonl(lines: Iterable[bytes], text_field: str, id_field: str, skip: int, encoding: str,
               group_field: Optional[str] = None) -> Iterator[Item]:
    index = 0
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        index += 1
        if index <= skip:
            continue
        doc_id, record, error = parse_line(raw, line_no, id_field, encoding)
        item = Item(index - 1, doc_id)
        item.record, item.error = record, error
        if record is not None:
            if not isinstance(record.get(text_field), str):
                item.error = f"no text field {text_field!r}"
            else:
                item.text = record[text_field]
                item.error = text_problem(item.text, repr(text_field))
            if group_field and record.get(group_field) is not None:
                item.group = str(record[group_field])
        yield item


# --------------------------------------------------------------------------
# Resuming line files
# --------------------------------------------------------------------------


def complete_lines(path: Path) -> List[int]:
    """Byte offset after each complete line of `path` (a partial last line has none)."""
    ends: List[int] = []
    if not path.exists():
        return ends
    with path.open("rb") as f:
        pos = 0
        for chunk in iter(lambda: f.read(1 << 20), b""):
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                ends.append(pos + nl + 1)
                start = nl + 1
            pos += len(chunk)
    return ends


def truncate_lines(path: Path, n: int, ends: List[int]) -> None:
    """Keep the first `n` complete lines of `path` (cuts a partially written last line)."""
    if path.exists():
        with path.open("rb+") as f:
            f.truncate(ends[n - 1] if n else 0)


def _canonical(record: Dict[str, Any], text_field: str) -> str:
    """A record's fields other than the text, as one comparable string."""
    return json.dumps({k: v for k, v in record.items() if k != text_field}, sort_keys=True)


def _spans_problem(spans_line: bytes, doc_id: Optional[str], out_text: Optional[str]) -> Optional[str]:
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


def _line_problem(in_raw: Optional[bytes], line_no: int, out_line: bytes, spans_line: Optional[bytes],
                  text_field: str, id_field: str, encoding: str) -> Optional[str]:
    """Why a kept output line (and its spans line) is not what this input's line gives, or None."""
    if b"\0" in out_line or (spans_line is not None and b"\0" in spans_line):
        return "NUL bytes (two runs wrote at once, or the disk filled)"
    doc_id, record = None, None
    if in_raw is not None:  # (unknown when the input is standard input: only the outputs are checked)
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
        if in_raw is not None and (record is None or _canonical(record, text_field) != _canonical(row, text_field)):
            return f"the line's fields are not those of the input's document {doc_id!r}"
        out_text = row.get(text_field)
    if spans_line is not None:
        return _spans_problem(spans_line, doc_id, out_text if isinstance(out_text, str) else None)
    return None


def _lines(path: Path, ends: List[int], n: int) -> Iterator[bytes]:
    """The first `n` complete lines of `path`."""
    with path.open("rb") as f:
        for _ in range(n):
            yield f.readline()


def resume_point(source: Optional[Path], out_path: Path, spans_path: Optional[Path], text_field: str, id_field: str,
                 encoding: str) -> int:
    """Lines a JSONL run can keep: the complete lines of both outputs, each checked against its
    input line (ids, fields, spans); a partly written last line is cut. Raises DeidError on
    damage or foreign content, so that a resume never keeps it."""
    out_ends = complete_lines(out_path)
    spans_ends = complete_lines(spans_path) if spans_path else out_ends
    keep = min(len(out_ends), len(spans_ends))
    with (source.open("rb") if source else contextlib.nullcontext(None)) as f:
        numbered = ((no, raw) for no, raw in enumerate(f, 1) if raw.strip()) if f else zip(itertools.count(1), itertools.repeat(None))
        spans_lines: Iterable[Optional[bytes]] = _lines(spans_path, spans_ends, keep) if spans_path else itertools.repeat(None)
        checked = 0
        for (line_no, in_raw), out_line, spans_line in zip(numbered, _lines(out_path, out_ends, keep), spans_lines):
            problem = _line_problem(in_raw, line_no, out_line, spans_line, text_field, id_field, encoding)
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


class OutputLock:
    """Exclusive locks on a run's outputs (a folder or a file each), taken at once or not at all:
    two runs writing one output would interleave their lines."""

    def __init__(self, files: List[Path], folders: List[Path] = ()) -> None:  # type: ignore[assignment]
        self.paths = [*folders, *files]
        self.folders = set(folders)
        self.fds: List[int] = []

    def __enter__(self) -> "OutputLock":
        path = None
        try:
            for path in self.paths:
                if path in self.folders:
                    path.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_RDONLY)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                self.fds.append(fd)
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise DeidError(f"another run is writing {path} (it holds the lock): wait for it to end, "
                                        "or choose another output") from None
        except OSError as e:
            self.__exit__()
            raise DeidError(f"cannot open {e.filename or path} for writing: {e.strerror or type(e).__name__}") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for fd in self.fds:
            os.close(fd)  # releases the lock
        self.fds = []


# --------------------------------------------------------------------------
# Errors and paths
# --------------------------------------------------------------------------


class _Errors:
    """Error handler of the pipeline's components: remembers why a document was dropped
    (the component and the exception's type: an exception's text may quote the note)."""

    def __init__(self) -> None:
        self.by_index: Dict[int, str] = {}

    def __call__(self, proc_name, proc, docs, e) -> None:  # spaCy drops the docs and goes on
        for doc in docs or ():
            if isinstance(getattr(doc, "_context", None), int):
                self.by_index[doc._context] = f"{proc_name} failed: {type(e).__name__}"


def set_error_handler(nlp: Language, handler: Callable) -> None:
    """Like nlp.set_error_handler, for the components that take one.

    spaCy's parser-based components (ner) have no attribute for it, and
    Language.set_error_handler raises on them; their errors are caught around nlp.pipe.
    """
    nlp.default_error_handler = handler
    for _, pipe in nlp.pipeline:
        if hasattr(pipe, "set_error_handler"):
            try:
                pipe.set_error_handler(handler)
            except AttributeError:
                pass


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_paths(input_path: str, output_path: str, spans_output: Optional[str]) -> None:
    """Raise DeidError when an output would write over (or into) the input or the other output."""
    outputs = [p for p in (output_path, spans_output) if p and p != "-"]
    if spans_output and spans_output != "-" and output_path != "-":
        if _same(Path(spans_output), Path(output_path)):
            raise DeidError(f"--spans-output {spans_output} is the same file as OUTPUT")
        if Path(output_path).is_dir() or (input_path != "-" and Path(input_path).is_dir()):
            if _inside(Path(spans_output), Path(output_path)):
                raise DeidError(f"--spans-output {spans_output} is inside the output folder {output_path} "
                                "(a note's output could replace it); choose a path outside it")
    if input_path == "-":
        return
    source = Path(input_path)
    if not source.exists():
        raise DeidError(f"{input_path} does not exist")
    for out in map(Path, outputs):
        if _same(out, source):
            raise DeidError(f"{out} is the input; choose another output path")
        if source.is_dir() and _inside(out, source):
            raise DeidError(f"{out} is inside the input folder {source}; choose a path outside it")
        if source.is_dir() and out.exists() and out.is_dir() and _inside(source, out):
            raise DeidError(f"the output folder {out} contains the input folder {source}")


# --------------------------------------------------------------------------
# Keys, pipelines, long notes
# --------------------------------------------------------------------------


def create_key_file(path: Union[str, Path]) -> Path:
    """Write a new secret surrogate key (32 random bytes as hex), readable by its owner only.
    Never overwrites: replacing a key silently would change every surrogate of later runs."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DeidError(f"{path} exists already: a key file is never overwritten") from None
    except OSError as e:
        raise DeidError(f"cannot create the key file {path}: {e.strerror or type(e).__name__}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


def read_key(key_file: Optional[Union[str, Path]] = None, env_var: str = KEY_ENV) -> Optional[bytes]:
    """The surrogate key from `key_file`, else from the environment variable (None: neither).
    Errors name the file, never the key."""
    try:
        return load_key(Path(key_file) if key_file else None, env_var)
    except ValueError as e:
        raise DeidError(str(e)) from None
    except OSError as e:
        raise DeidError(f"cannot read the key file {key_file}: {e.strerror or type(e).__name__}") from None


def use_key(nlp: Language, key: Optional[bytes], insecure_demo_key: bool = False) -> None:
    """Give deid_transform the run's key; refuse to pseudonymize without one unless told it is a demo:
    without a key, anyone with the pipeline can re-draw the surrogates and test guesses."""
    transform = nlp.get_pipe("deid_transform")
    if key is None:
        if transform.mode == "pseudonymize" and not insecure_demo_key and not getattr(transform, "keyed", False):
            raise DeidError(
                f"pseudonymize needs a secret key: --key-file PATH or the environment variable {KEY_ENV} "
                "(create one with --new-key-file PATH); --insecure-demo-key only for demonstrations")
        return
    if not hasattr(transform, "set_key"):
        raise DeidError("this pipeline's deid_transform takes no surrogate key (no set_key); update its code")
    transform.set_key(key)


def load_pipeline(model: Union[str, Path, Language]) -> Language:
    """The pipeline by path or package name (or a loader a packaged pipeline registered)."""
    if isinstance(model, Language):
        return model
    ensure_registered()
    try:
        return spacy.load(model)
    except OSError as e:
        raise DeidError(f"cannot load the pipeline {model}: no installed package or readable pipeline folder "
                        f"by that name ({type(e).__name__})") from None
    except Exception as e:  # a broken config or weights: the path and the type say where to look
        raise DeidError(f"cannot load the pipeline {model}: {type(e).__name__}") from None


def make_doc(nlp: Language, text: str, group: Optional[str] = None) -> Doc:
    """Tokenize `text`, with its date-shift group (a patient id) when the component takes one."""
    doc = nlp.make_doc(text)
    if group is not None and Doc.has_extension("deid_group"):
        doc._.deid_group = group
    return doc


def cut_points(text: str, max_chars: int) -> List[Tuple[int, int]]:
    """(start, end) of pieces of at most `max_chars`: cut after the last blank line, else line
    break, else space of each window's second half (an entity rarely spans them); a hard cut
    only where a piece has no whitespace at all."""
    pieces: List[Tuple[int, int]] = []
    start = 0
    while len(text) - start > max_chars:
        end, low = start + max_chars, start + max_chars // 2
        cut = text.rfind("\n\n", low, end) + 2
        if cut < low + 2:
            cut = max(text.rfind(c, low, end) for c in "\n\r\t ") + 1
        if cut <= low:
            cut = end
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(text)))
    return pieces


class _PieceError(Exception):
    """A piece of a long note failed: where (offset) and the exception's type."""


def deidentify_long(nlp: Language, text: str, group: Optional[str], max_chars: int) -> Tuple[str, List[Dict[str, Any]], int]:
    """De-identify a long note piece by piece; the output, spans (offsets in the whole note and
    output) and words, as one document would give them. The pieces share `group`, so that a
    keyed component shifts all their dates alike."""
    previous = nlp.default_error_handler
    set_error_handler(nlp, raise_error)  # nlp(doc) would go on after a handled error
    pieces: List[str] = []
    spans: List[Dict[str, Any]] = []
    words = out_len = 0
    try:
        for start, end in cut_points(text, max_chars):
            try:
                doc = nlp(make_doc(nlp, text[start:end], group))
            except Exception as e:
                raise _PieceError(f"the piece at character {start}: {type(e).__name__}") from None
            if doc._.deidentified is None:
                raise _PieceError(f"the piece at character {start}: no de-identified text")
            for span in doc._.deid_spans:
                spans.append({**span, "start": span["start"] + start, "end": span["end"] + start,
                              "out_start": span["out_start"] + out_len, "out_end": span["out_end"] + out_len})
            pieces.append(doc._.deidentified)
            out_len += len(doc._.deidentified)
            words += len(doc)
    finally:
        set_error_handler(nlp, previous)
    return "".join(pieces), spans, words


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


class _Writer:
    """Writes each document's result in input order and keeps the summary. A write that fails
    (full disk, read-only folder) stops the run with the path named; what was written stays."""

    def __init__(self, summary: Dict[str, Any], *, out_dir: Optional[Path], out_file: Optional[BinaryIO],
                 out_name: str, spans_file: Optional[BinaryIO], spans_name: Optional[str], text_field: str,
                 id_field: str, encoding: str, silent: bool, close_out: bool) -> None:
        self.summary, self.out_dir, self.out_file, self.out_name = summary, out_dir, out_file, out_name
        self.spans_file, self.spans_name = spans_file, spans_name
        self.text_field, self.id_field, self.encoding, self.silent = text_field, id_field, encoding, silent
        self.close_out = close_out

    def write(self, f: BinaryIO, name: Optional[str], data: bytes) -> None:
        try:
            f.write(data)
        except OSError as e:
            raise self.stopped(name, e) from None

    def stopped(self, name: Optional[str], e: OSError) -> DeidError:
        done = self.summary["documents"] + self.summary["failed"]
        return DeidError(f"cannot write {e.filename or name}: {e.strerror or type(e).__name__}. The run stopped; "
                         f"the {done:,} documents before are kept: fix it and run again (the run resumes)")

    def fail(self, item: Item, reason: str) -> None:
        self.summary["failed"] += 1
        if len(self.summary["failures"]) < 10_000:
            self.summary["failures"].append({"id": item.id, "error": reason})
        if not self.silent:
            tqdm.write(f"⚠ {item.id}: {reason}", file=sys.stderr)
        if self.out_dir is None and item.index >= 0:  # one output line per input line, so resuming can count
            row: Dict[str, Any] = {"_deid_error": reason}
            if item.record is not None and self.id_field in item.record:
                row[self.id_field] = item.record[self.id_field]
            elif item.id:
                row["_deid_id"] = item.id
            self.write(self.out_file, self.out_name, _jsonl(row))  # type: ignore[arg-type]
            if self.spans_file:
                self.write(self.spans_file, self.spans_name, _jsonl({"id": item.id, "error": reason, "spans": None}))

    def succeed(self, item: Item, text: str, spans: List[Dict[str, Any]], words: int) -> None:
        if self.spans_file:
            self.write(self.spans_file, self.spans_name, _jsonl({"id": item.id, "spans": spans}))
            try:
                self.spans_file.flush()  # before the output exists, so a finished document has its spans
            except OSError as e:
                raise self.stopped(self.spans_name, e) from None
        if self.out_dir is not None:
            target = self.out_dir / item.path  # type: ignore[operator]
            partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(text.encode(self.encoding))
                os.replace(partial, target)
            except OSError as e:
                with contextlib.suppress(OSError):
                    partial.unlink()
                raise self.stopped(str(target), e) from None
        else:
            record = dict(item.record)  # type: ignore[arg-type]
            record[self.text_field] = text
            self.write(self.out_file, self.out_name, _jsonl(record))  # type: ignore[arg-type]
        self.summary["documents"] += 1
        self.summary["words"] += words
        self.summary["entities"].update(s["label"] for s in spans)

    def close(self, quiet: bool = False) -> None:
        """Close (or flush) the outputs; a failing flush (full disk) is an error unless `quiet`."""
        files = [(self.out_file, self.out_name, self.close_out), (self.spans_file, self.spans_name, True)]
        error = None
        for f, name, close in files:
            if f is None:
                continue
            try:
                f.close() if close else f.flush()
            except OSError as e:
                error = error or self.stopped(name, e)
        if error is not None and not quiet:
            raise error


def _open_folder_run(source: Path, out_dir: Path, spans_path: Optional[Path], resume: bool, encoding: str,
                     msg: Printer) -> Tuple[List[Path], List[Item], int, Optional[BinaryIO]]:
    """The files still to do, the broken links to report, how many are done, the spans file."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DeidError(f"{out_dir} is a file; a folder input needs an output folder")
    files, broken = list_folder(source)
    todo = files
    if resume:
        done = {rel for rel in files if (out_dir / rel).exists()}
        if spans_path is not None:
            kept, dropped = _keep_finished_spans(spans_path, out_dir, encoding)
            if dropped:
                msg.warn(f"{spans_path}: {dropped:,} spans lines were cut, damaged or without their output; "
                         "those documents are done again")
            done = {rel for rel in done if rel.as_posix() in kept}
        todo = [rel for rel in files if rel not in done]
    spans_file = None
    if spans_path is not None:
        spans_file = spans_path.open("ab" if resume else "wb")
    return todo, broken, len(files) - len(todo), spans_file


def _docs(nlp: Language, chunk: List[Item], max_chars: int) -> Iterator[Tuple[Doc, int]]:
    """(doc, index) of the chunk's documents for nlp.pipe; tokenized here, so that a tokenizer
    error fails its document only. Failed and long documents are left out (handled in order)."""
    for item in chunk:
        if item.error is not None or len(item.text) > max_chars:  # type: ignore[arg-type]
            continue
        try:
            doc = make_doc(nlp, item.text, item.group)  # type: ignore[arg-type]
        except Exception as e:
            item.error = f"tokenizer failed: {type(e).__name__}"
            continue
        yield doc, item.index


def deidentify_main(
    model: Union[str, Path, Language],
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    text_field: str = "text",
    id_field: str = "id",
    spans_output: Optional[Union[str, Path]] = None,
    batch_size: int = 64,
    n_process: int = 1,
    mode: Optional[str] = None,
    rules: bool = True,
    seed: Optional[int] = None,
    resume: bool = True,
    stdin_format: str = "jsonl",
    encoding: str = "utf-8",
    silent: bool = False,
    stdin: Optional[BinaryIO] = None,
    stdout: Optional[BinaryIO] = None,
    key: Optional[bytes] = None,
    insecure_demo_key: bool = False,
    patient_id_field: Optional[str] = None,
    max_chars: int = MAX_CHARS,
    max_doc_chars: int = MAX_DOC_CHARS,
) -> Dict[str, Any]:
    """De-identify a folder of .txt, a JSONL file or stdin; return the run's summary.

    `model` is a path, a package name or a Language (which gets the deid components and the
    error handlers in place). `key`: the secret surrogate key (see read_key); pseudonymizing
    without one needs `insecure_demo_key`. Raises DeidError (a ValueError) for what the run
    cannot do: paths that would overwrite the input, a locked or damaged output, a failed write.
    """
    input_path, output_path = str(input_path), str(output_path)
    spans_output = str(spans_output) if spans_output else None
    if stdin_format not in STDIN_FORMATS:
        raise DeidError(f"unknown --stdin-format {stdin_format!r}: choose {' or '.join(STDIN_FORMATS)}")
    if max_chars < 1 or max_doc_chars < 1:
        raise DeidError(f"--max-chars ({max_chars}) and --max-doc-chars ({max_doc_chars}) must be positive")
    check_paths(input_path, output_path, spans_output)
    to_stdout = output_path == "-"
    msg = Printer(no_print=silent)
    say = contextlib.redirect_stdout(sys.stderr) if to_stdout else contextlib.nullcontext()

    nlp = load_pipeline(model)
    prepare_pipeline(nlp, mode=mode, rules=rules, seed=seed)
    use_key(nlp, key, insecure_demo_key)
    nlp.max_length = max(nlp.max_length, max_chars + 1)
    errors = _Errors()
    set_error_handler(nlp, errors)

    if input_path == "-" and stdin_format == "text":
        return _deidentify_one_text(nlp, stdin or sys.stdin.buffer, output_path, stdout, encoding, msg, max_chars,
                                    max_doc_chars)
    source = Path(input_path)
    folder_mode = input_path != "-" and source.is_dir()
    if not folder_mode and input_path != "-" and not source.is_file():
        raise DeidError(f"{input_path} is neither a folder of .txt files, a .jsonl file nor -")
    if folder_mode and to_stdout:
        raise DeidError("a folder input needs an output folder, not -")
    spans_path = Path(spans_output) if spans_output and spans_output != "-" else None
    lock = OutputLock(files=[p for p in ([] if to_stdout or folder_mode else [Path(output_path)]) + [spans_path] if p],
                      folders=[Path(output_path)] if folder_mode else [])
    with lock:
        with say:
            if folder_mode:
                summary = _run_folder(nlp, errors, source, Path(output_path), spans_path, resume, encoding, msg,
                                      batch_size, n_process, max_chars, max_doc_chars, silent)
            else:
                summary = _run_jsonl(nlp, errors, input_path, output_path, spans_path, resume, encoding, msg,
                                     batch_size, n_process, max_chars, max_doc_chars, silent, text_field, id_field,
                                     patient_id_field, stdin, stdout)
            _print_summary(msg, summary, output_path)
    return summary


def _new_summary(skipped: int) -> Dict[str, Any]:
    return {"documents": 0, "skipped": skipped, "failed": 0, "failures": [], "words": 0, "entities": Counter()}


def _run_folder(nlp: Language, errors: _Errors, source: Path, out_dir: Path, spans_path: Optional[Path], resume: bool,
                encoding: str, msg: Printer, batch_size: int, n_process: int, max_chars: int, max_doc_chars: int,
                silent: bool) -> Dict[str, Any]:
    """A folder of .txt files into a folder: each output written to a temporary name, then renamed."""
    todo, broken, skipped, spans_file = _open_folder_run(source, out_dir, spans_path, resume, encoding, msg)
    summary = _new_summary(skipped)
    writer = _Writer(summary, out_dir=out_dir, out_file=None, out_name=str(out_dir), spans_file=spans_file,
                     spans_name=str(spans_path), text_field="text", id_field="id", encoding=encoding, silent=silent,
                     close_out=True)
    for item in broken:
        writer.fail(item, item.error)  # type: ignore[arg-type]
    return _run(nlp, errors, read_folder(source, todo, encoding), len(todo), writer, batch_size, n_process,
                max_chars, max_doc_chars, silent)


def _run_jsonl(nlp: Language, errors: _Errors, input_path: str, output_path: str, spans_path: Optional[Path],
               resume: bool, encoding: str, msg: Printer, batch_size: int, n_process: int, max_chars: int,
               max_doc_chars: int, silent: bool, text_field: str, id_field: str, group_field: Optional[str],
               stdin: Optional[BinaryIO], stdout: Optional[BinaryIO]) -> Dict[str, Any]:
    """JSONL (a file or stdin) into JSONL: one output line per input line, resumable by counting."""
    source = None if input_path == "-" else Path(input_path)
    out_path = None if output_path == "-" else Path(output_path)
    skip = 0
    if resume and out_path is not None and out_path.is_file():  # (not /dev/full and other devices)
        skip = resume_point(source, out_path, spans_path, text_field, id_field, encoding)
    total = None
    with contextlib.ExitStack() as stack:
        if source is None:
            lines: Iterable[bytes] = stdin or sys.stdin.buffer
        else:
            with source.open("rb") as f:
                total = sum(1 for line in f if line.strip()) - skip
            lines = stack.enter_context(source.open("rb"))
        try:
            out_file = out_path.open("ab" if skip else "wb") if out_path else (stdout or sys.stdout.buffer)
            spans_file = spans_path.open("ab" if skip else "wb") if spans_path else None
        except OSError as e:
            raise DeidError(f"cannot open {e.filename} for writing: {e.strerror or type(e).__name__}") from None
        summary = _new_summary(skip)
        writer = _Writer(summary, out_dir=None, out_file=out_file, out_name=output_path, spans_file=spans_file,
                         spans_name=str(spans_path), text_field=text_field, id_field=id_field, encoding=encoding,
                         silent=silent, close_out=out_path is not None)
        items = read_jsonl(lines, text_field, id_field, skip, encoding, group_field)
        return _run(nlp, errors, items, total, writer, batch_size, n_process, max_chars, max_doc_chars, silent)


def _run(nlp: Language, errors: _Errors, items: Iterator[Item], total: Optional[int], writer: _Writer,
         batch_size: int, n_process: int, max_chars: int, max_doc_chars: int, silent: bool) -> Dict[str, Any]:
    """Run the pipeline over the items in chunks (memory zones); write each result in order."""
    summary = writer.summary
    start = time.perf_counter()
    progress = tqdm(total=total, unit="doc", disable=silent, file=sys.stderr, dynamic_ncols=True)

    def settle_item(item: Item, dropped: str) -> None:
        """A document that did not come back from nlp.pipe: failed before, long, or dropped."""
        if item.error is None and len(item.text) > max_chars:  # type: ignore[arg-type]
            try:
                text, spans, words = deidentify_long(nlp, item.text, item.group or f"note {item.id}", max_chars)  # type: ignore[arg-type]
            except _PieceError as e:
                writer.fail(item, str(e))
            else:
                writer.succeed(item, text, spans, words)
        else:
            writer.fail(item, item.error or errors.by_index.pop(item.index, dropped))
        progress.update(1)

    def emit(doc: Doc, item: Item) -> None:
        if doc._.deidentified is None:
            writer.fail(item, errors.by_index.pop(item.index, "no de-identified text (component error)"))
        else:
            writer.succeed(item, doc._.deidentified, doc._.deid_spans, len(doc))
        progress.update(1)

    try:
        while True:
            chunk = list(itertools.islice(items, CHUNK_SIZE))
            if not chunk:
                break
            for item in chunk:
                if item.error is None and len(item.text) > max_doc_chars:  # type: ignore[arg-type]
                    item.error = f"too large: {len(item.text):,} characters, over --max-doc-chars {max_doc_chars:,}; not processed"  # type: ignore[arg-type]
            pending = deque(chunk)

            def settle(until: Optional[int]) -> None:
                """Settle the items before `until` (all if None) that never came back."""
                while pending and (until is None or pending[0].index != until):
                    settle_item(pending.popleft(), "dropped by the pipeline (component error)")

            with nlp.memory_zone():
                try:
                    for doc, index in nlp.pipe(_docs(nlp, chunk, max_chars), as_tuples=True, batch_size=batch_size,
                                               n_process=n_process):
                        settle(index)
                        emit(doc, pending.popleft())
                except DeidError:
                    raise
                except Exception as e:  # a component without an error handler failed on the batch
                    if not silent:
                        tqdm.write(f"⚠ a batch failed ({type(e).__name__}); going on one document at a time",
                                   file=sys.stderr)
                    _one_at_a_time(nlp, errors, pending, settle_item, emit, writer, progress, max_chars)
            settle(None)
    except BaseException:
        progress.close()
        writer.close(quiet=True)
        raise
    progress.close()
    writer.close()
    seconds = time.perf_counter() - start
    summary["seconds"] = round(seconds, 3)
    summary["words_per_second"] = round(summary["words"] / seconds) if seconds > 0 else 0
    summary["entities"] = dict(sorted(summary["entities"].items()))
    return summary


def _one_at_a_time(nlp: Language, errors: _Errors, pending: deque, settle_item: Callable, emit: Callable,
                   writer: _Writer, progress: tqdm, max_chars: int) -> None:
    """After a batch failed: each pending document alone, every error raised (nlp(doc) goes on
    after a handled error with the next component, and would write a doc without entities)."""
    set_error_handler(nlp, raise_error)
    try:
        while pending:
            item = pending.popleft()
            if item.error is not None or len(item.text) > max_chars:
                settle_item(item, "")
                continue
            try:
                doc = nlp(make_doc(nlp, item.text, item.group))
            except Exception as doc_error:
                writer.fail(item, f"pipeline failed: {type(doc_error).__name__}")
                progress.update(1)
                continue
            emit(doc, item)
    finally:
        set_error_handler(nlp, errors)


def _deidentify_one_text(nlp: Language, stream: BinaryIO, output_path: str, stdout: Optional[BinaryIO],
                         encoding: str, msg: Printer, max_chars: int = MAX_CHARS,
                         max_doc_chars: int = MAX_DOC_CHARS) -> Dict[str, Any]:
    """Standard input as one plain-text document; the de-identified text to OUTPUT or stdout."""
    start = time.perf_counter()
    data = stream.read()
    summary: Dict[str, Any] = {"documents": 0, "skipped": 0, "failed": 0, "failures": [], "words": 0, "entities": {}}
    result = None
    try:
        text = data.decode(encoding)
        error = text_problem(text, "standard input")
        if error is None and len(text) > max_doc_chars:
            error = f"too large: {len(text):,} characters, over --max-doc-chars {max_doc_chars:,}; not processed"
        if error is None:
            result = deidentify_long(nlp, text, None, max_chars)
    except UnicodeDecodeError as e:
        error = f"cannot decode as {encoding}: {e.reason} at byte {e.start}"
    except _PieceError as e:
        error = str(e)
    if result is None:
        summary["failed"], summary["failures"] = 1, [{"id": "stdin", "error": error}]
    else:
        out = result[0].encode(encoding)
        try:
            if output_path == "-":
                (stdout or sys.stdout.buffer).write(out)
                (stdout or sys.stdout.buffer).flush()
            else:
                target = Path(output_path)
                partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
                partial.write_bytes(out)
                os.replace(partial, target)
        except OSError as e:
            raise DeidError(f"cannot write {e.filename or output_path}: {e.strerror or type(e).__name__}") from None
        summary.update(documents=1, words=result[2], entities=dict(Counter(s["label"] for s in result[1])))
    seconds = time.perf_counter() - start
    summary["seconds"] = round(seconds, 3)
    summary["words_per_second"] = round(summary["words"] / seconds) if seconds > 0 else 0
    with contextlib.redirect_stdout(sys.stderr) if output_path == "-" else contextlib.nullcontext():
        _print_summary(msg, summary, output_path)
    return summary


def _jsonl(row: Dict[str, Any]) -> bytes:
    """One JSON line; a value with a lone surrogate (kept from the input) is written escaped."""
    try:
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf8")
    except UnicodeEncodeError:
        return (json.dumps(row) + "\n").encode("utf8")


def _keep_finished_spans(spans_path: Path, out_dir: Path, encoding: str = "utf-8") -> Tuple[set, int]:
    """Before a folder run resumes: keep the spans lines of documents whose output exists and
    matches them; drop the others (a cut last line, NUL bytes, duplicates, lines of a missing or
    different output), whose documents are done again. Returns the kept ids and the number of
    dropped lines. Rewritten in place: the file stays the one this run has locked."""
    seen: set = set()
    kept: List[bytes] = []
    dropped = 0
    with spans_path.open("rb") as f:
        for line in f:
            doc_id = None
            if line.endswith(b"\n") and b"\0" not in line:
                with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
                    doc_id = json.loads(line)["id"]
            target = out_dir / doc_id if isinstance(doc_id, str) and doc_id not in seen else None
            if target is not None and _inside(target, out_dir) and target.is_file():
                try:
                    out_text = target.read_bytes().decode(encoding)
                except (OSError, UnicodeDecodeError):
                    out_text = None
                if out_text is not None and _spans_problem(line, doc_id, out_text) is None:
                    seen.add(doc_id)
                    kept.append(line)
                    continue
            dropped += 1
    with spans_path.open("r+b") as f:
        f.write(b"".join(kept))
        f.truncate()
    return seen, dropped


def _print_summary(msg: Printer, summary: Dict[str, Any], output_path: str) -> None:
    msg.divider("De-identification")
    msg.good(
        f"Processed {summary['documents']:,} documents → {output_path} "
        f"({summary['skipped']:,} already done, {summary['failed']:,} failed)"
    )
    msg.info(f"{summary['words']:,} words in {summary['seconds']:.1f} s: {summary['words_per_second']:,} words/s")
    if summary["entities"]:
        msg.table(summary["entities"], header=("label", "entities"), divider=True, max_col=48)
    if summary["failed"]:
        shown = summary["failures"][:20]
        msg.warn(f"{summary['failed']:,} documents failed (no output written for them):")
        for failure in shown:
            msg.text(f"  {failure['id']}: {failure['error']}")
        if summary["failed"] > len(shown):
            msg.text(f"  ... and {summary['failed'] - len(shown):,} more")


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(
    model: Annotated[str, typer.Argument(help="Trained pipeline: a folder or an installed package name")],
    input_path: Annotated[Optional[str], typer.Argument(help="Folder of .txt files, a .jsonl file, or - for stdin")] = None,
    output_path: Annotated[Optional[str], typer.Argument(help="Output folder (folder input), .jsonl file, or - for stdout")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL: field with the text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL: field with the document id (else the line number)")] = "id",
    spans_output: Annotated[Optional[str], typer.Option(help="Also write the replaced spans (JSONL, offsets in input and output)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per batch (nlp.pipe)")] = 64,
    n_process: Annotated[int, typer.Option(min=1, help="Processes (nlp.pipe)")] = 1,
    mode: Annotated[Optional[str], typer.Option(help="redact, mask or pseudonymize (default: the pipeline's, else pseudonymize)")] = None,
    rules: Annotated[bool, typer.Option(help="Add the structured-PHI rules when the pipeline has no deid components")] = True,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the surrogates (default: the pipeline's)")] = None,
    resume: Annotated[bool, typer.Option(help="Skip outputs already complete from an earlier run")] = True,
    stdin_format: Annotated[str, typer.Option(help="Standard input: jsonl (one record per line) or text (one document)")] = "jsonl",
    code: Annotated[Optional[str], typer.Option(help="Comma-separated Python files to import (registered functions)")] = None,
    key_file: Annotated[Optional[Path], typer.Option(help=f"Secret surrogate key (else the environment variable {KEY_ENV})")] = None,
    create_key: Annotated[bool, typer.Option(help="With --key-file: create the key file first when it does not exist")] = False,
    new_key_file: Annotated[Optional[Path], typer.Option(help="Write a new secret key to this file (never overwrites), then run with it if INPUT and OUTPUT are given")] = None,
    insecure_demo_key: Annotated[bool, typer.Option(help="Pseudonymize without a secret key (surrogates anyone with the pipeline can re-draw): demonstrations only")] = False,
    patient_id_field: Annotated[Optional[str], typer.Option(help="JSONL: field with the patient id; a patient's notes share their date shift (with a key)")] = None,
    max_chars: Annotated[int, typer.Option(min=1, help="Notes longer than this are de-identified in pieces cut at line breaks or spaces")] = MAX_CHARS,
    max_doc_chars: Annotated[int, typer.Option(min=1, help="Notes longer than this are reported as too large, not processed")] = MAX_DOC_CHARS,
) -> None:
    """De-identify clinical notes (folder of .txt, JSONL or stdin) with a trained pipeline."""
    msg = Printer()
    for path in (code or "").split(","):
        if path.strip():
            import_file(Path(path.strip()).stem, path.strip())
    if mode is not None and mode not in ("redact", "mask", "pseudonymize"):
        _fail(msg, f"Unknown --mode {mode!r}: choose redact, mask or pseudonymize")
    try:
        if new_key_file is not None:
            key_file = create_key_file(new_key_file)
            msg.good(f"Wrote a new secret key to {key_file} (readable by you only; keep it out of version control)")
            if input_path is None and output_path is None:
                return
        if input_path is None or output_path is None:
            _fail(msg, "INPUT and OUTPUT are needed (only --new-key-file runs without them)")
        if create_key and key_file is not None and not key_file.exists():
            create_key_file(key_file)
            msg.info(f"Created the secret key {key_file}")
        key = read_key(key_file) if (key_file is not None or os.environ.get(KEY_ENV)) else None
        summary = deidentify_main(
            model, input_path, output_path, text_field=text_field, id_field=id_field,
            spans_output=spans_output, batch_size=batch_size, n_process=n_process, mode=mode,
            rules=rules, seed=seed, resume=resume, stdin_format=stdin_format, key=key,
            insecure_demo_key=insecure_demo_key, patient_id_field=patient_id_field, max_chars=max_chars,
            max_doc_chars=max_doc_chars,
        )
    except ValueError as e:  # DeidError and the like: messages that name paths, never text
        _fail(msg, str(e))
    except OSError as e:  # anything the run did not foresee: the file and the reason, no traceback
        _fail(msg, f"{e.filename or 'a file'}: {e.strerror or type(e).__name__}")
    if summary["failed"] and summary["documents"] == 0:
        raise typer.Exit(code=1)


def _fail(msg: Printer, text: str) -> None:
    """The command's error: one line on stderr, exit code 1."""
    with contextlib.redirect_stdout(sys.stderr):
        msg.fail(text, exits=1)


def cli_main(argv: Optional[List[str]] = None) -> None:
    """The console script `clinical-deid MODEL INPUT OUTPUT ...` (and `python -m clinical_deid`)."""
    app = typer.Typer(add_completion=False)
    app.command()(main)
    typer.main.get_command(app).main(args=list(sys.argv[1:] if argv is None else argv), prog_name="clinical-deid")


if __name__ == "__main__":
    cli_main()
