"""De-identify clinical notes with a pipeline: the production command.

    python -m scripts.deidentify MODEL INPUT OUTPUT [--text-field text] [--id-field id]
        [--spans-output spans.jsonl] [--batch-size 64] [--n-process 1]
        [--mode redact|mask|pseudonymize] [--no-rules] [--seed 0] [--no-resume]

INPUT is a folder of .txt files (OUTPUT: the same tree, de-identified), a .jsonl file (the
text field is replaced, other fields are kept; OUTPUT: a .jsonl file, one line per input
line) or ``-`` for standard input (JSONL, or one text with ``--stdin-format text``; OUTPUT
may be ``-`` for standard output). MODEL is a trained pipeline (a folder or an installed
package); ``deid_rules`` and ``deid_transform`` are added after its last component when it
has no ``deid_transform`` yet. The command never writes over its input, reports a document
that fails (unreadable file, bad JSON line, component error) with its id and goes on, and
resumes an interrupted run: a folder's output files are written to a temporary name and
renamed, so any output that exists is complete and is skipped; a JSONL output's complete
lines are counted and as many inputs are skipped.

Package-safe: imports no ``scripts.*`` module (the components are imported from the files
beside this one), so a packaged pipeline can ship this file and call
``cli_main(model="<package name>")`` from its ``__main__``.
"""
from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Union

import spacy
import typer
from spacy.language import Language
from spacy.util import import_file, raise_error
from tqdm import tqdm
from wasabi import Printer

# Pipelines by name that a packaged pipeline's __main__ loads itself (see cli_main).
_LOADERS: Dict[str, Callable[[], Language]] = {}
# Documents per memory zone: strings that the tokenizer adds to the vocab while it reads a
# chunk are freed after it, so a run over millions of notes does not grow without bound.
CHUNK_SIZE = 10_000
PARTIAL_SUFFIX = ".partial"


def ensure_registered() -> None:
    """Import the tokenizer and the components from the files beside this one if needed."""
    for module, registered in (
        ("functions", lambda: spacy.registry.has("tokenizers", "deid.clinical_tokenizer.v1")),
        ("deid_rules", lambda: Language.has_factory("deid_rules")),
        ("deid_component", lambda: Language.has_factory("deid_transform")),
    ):
        if registered():
            continue
        if __package__:
            try:
                importlib.import_module(f".{module}", __package__)
                continue
            except ImportError:
                pass
        path = Path(__file__).parent / f"{module}.py"
        if path.exists():
            import_file(module, path)


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

    __slots__ = ("index", "id", "text", "record", "path", "error")

    def __init__(self, index: int, id: str, path: Optional[Path] = None) -> None:
        self.index = index
        self.id = id
        self.path = path  # relative path of a .txt input
        self.text: Optional[str] = None
        self.record: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None


def read_folder(folder: Path, files: List[Path], encoding: str) -> Iterator[Item]:
    for index, rel in enumerate(files):
        item = Item(index, rel.as_posix(), path=rel)
        try:
            item.text = (folder / rel).read_bytes().decode(encoding)
        except UnicodeDecodeError as e:
            item.error = f"cannot decode as {encoding}: {e.reason} at byte {e.start}"
        except OSError as e:
            item.error = f"cannot read: {e.strerror or e}"
        yield item


def read_jsonl(lines: Iterable[bytes], text_field: str, id_field: str, skip: int, encoding: str) -> Iterator[Item]:
    index = 0
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        index += 1
        if index <= skip:
            continue
        item = Item(index - 1, f"line {line_no}")
        try:
            record = json.loads(raw.decode(encoding))
        except UnicodeDecodeError as e:
            item.error = f"cannot decode as {encoding}: {e.reason}"
        except ValueError as e:
            item.error = f"bad JSON: {e}"
        else:
            if not isinstance(record, dict):
                item.error = "not a JSON object"
            else:
                item.record = record
                if record.get(id_field) is not None:
                    item.id = str(record[id_field])
                if not isinstance(record.get(text_field), str):
                    item.error = f"no text field {text_field!r}"
                else:
                    item.text = record[text_field]
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


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


class _Errors:
    """Error handler of the pipeline's components: remembers why a document was dropped."""

    def __init__(self) -> None:
        self.by_index: Dict[int, str] = {}

    def __call__(self, proc_name, proc, docs, e) -> None:  # spaCy drops the docs and goes on
        for doc in docs or ():
            if isinstance(getattr(doc, "_context", None), int):
                self.by_index[doc._context] = f"{proc_name} failed: {e!r}"


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
    """Raise ValueError when an output would write over (or into) the input."""
    outputs = [p for p in (output_path, spans_output) if p and p != "-"]
    if spans_output and spans_output != "-" and output_path != "-" and _same(Path(spans_output), Path(output_path)):
        raise ValueError(f"--spans-output {spans_output} is the same file as OUTPUT")
    if input_path == "-":
        return
    source = Path(input_path)
    if not source.exists():
        raise ValueError(f"{input_path} does not exist")
    for out in map(Path, outputs):
        if _same(out, source):
            raise ValueError(f"{out} is the input; choose another output path")
        if source.is_dir() and _inside(out, source):
            raise ValueError(f"{out} is inside the input folder {source}; choose a path outside it")
        if source.is_dir() and out.exists() and out.is_dir() and _inside(source, out):
            raise ValueError(f"the output folder {out} contains the input folder {source}")


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
) -> Dict[str, Any]:
    """De-identify a folder of .txt, a JSONL file or stdin; return the run's summary.

    `model` is a path, a package name or a Language (which gets the deid components and the
    error handlers in place). Raises ValueError for paths that would overwrite the input.
    """
    input_path, output_path = str(input_path), str(output_path)
    spans_output = str(spans_output) if spans_output else None
    check_paths(input_path, output_path, spans_output)
    to_stdout = output_path == "-"
    msg = Printer(no_print=silent)
    say = contextlib.redirect_stdout(sys.stderr) if to_stdout else contextlib.nullcontext()

    if isinstance(model, Language):
        nlp = model
    elif str(model) in _LOADERS:
        nlp = _LOADERS[str(model)]()
    else:
        ensure_registered()
        nlp = spacy.load(model)
    prepare_pipeline(nlp, mode=mode, rules=rules, seed=seed)
    errors = _Errors()
    set_error_handler(nlp, errors)

    source = Path(input_path)
    folder_mode = input_path != "-" and source.is_dir()
    if input_path == "-" and stdin_format == "text":
        return _deidentify_one_text(nlp, stdin or sys.stdin.buffer, output_path, stdout, encoding, msg)
    skipped = 0
    total: Optional[int] = None
    spans_file: Optional[BinaryIO] = None
    out_file: Optional[BinaryIO] = None
    if folder_mode:
        out_dir = Path(output_path)
        if to_stdout:
            raise ValueError("a folder input needs an output folder, not -")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"{out_dir} is a file; a folder input needs an output folder")
        files = sorted(p.relative_to(source) for p in source.rglob("*.txt") if p.is_file())
        todo = files
        if resume:
            todo = [rel for rel in files if not (out_dir / rel).exists()]
            skipped = len(files) - len(todo)
        total = len(todo)
        items: Iterator[Item] = read_folder(source, todo, encoding)
        if spans_output:
            spans_path = Path(spans_output)
            if resume and spans_path.exists():
                _keep_finished_spans(spans_path, out_dir)
                spans_file = spans_path.open("ab")
            else:
                spans_path.parent.mkdir(parents=True, exist_ok=True)
                spans_file = spans_path.open("wb")
    else:
        if input_path != "-" and not source.is_file():
            raise ValueError(f"{input_path} is neither a folder of .txt files, a .jsonl file nor -")
        out_path = None if to_stdout else Path(output_path)
        spans_path = Path(spans_output) if spans_output else None
        skip = 0
        if resume and out_path is not None and out_path.exists():
            out_ends = complete_lines(out_path)
            spans_ends = complete_lines(spans_path) if spans_path else out_ends
            skip = min(len(out_ends), len(spans_ends))
            truncate_lines(out_path, skip, out_ends)
            if spans_path:
                truncate_lines(spans_path, skip, spans_ends)
        skipped = skip
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_file = out_path.open("ab" if skip else "wb")
        else:
            out_file = stdout or sys.stdout.buffer
        if spans_path:
            spans_path.parent.mkdir(parents=True, exist_ok=True)
            spans_file = spans_path.open("ab" if skip else "wb")
        if input_path == "-":
            lines: Iterable[bytes] = stdin or sys.stdin.buffer
        else:
            with source.open("rb") as f:
                total = sum(1 for line in f if line.strip()) - skip
            lines = source.open("rb")
        items = read_jsonl(lines, text_field, id_field, skip, encoding)

    summary: Dict[str, Any] = {"documents": 0, "skipped": skipped, "failed": 0, "failures": [], "words": 0,
                               "entities": Counter()}

    def fail(item: Item, reason: str) -> None:
        summary["failed"] += 1
        if len(summary["failures"]) < 10_000:
            summary["failures"].append({"id": item.id, "error": reason})
        if not silent:
            tqdm.write(f"⚠ {item.id}: {reason}", file=sys.stderr)
        if not folder_mode:  # keep one output line per input line, so resuming can count
            row: Dict[str, Any] = {"_deid_error": reason}
            if item.record is not None and id_field in item.record:
                row[id_field] = item.record[id_field]
            elif item.id:
                row["_deid_id"] = item.id
            out_file.write(_jsonl(row))  # type: ignore[union-attr]
            if spans_file:
                spans_file.write(_jsonl({"id": item.id, "error": reason, "spans": None}))

    def succeed(item: Item, doc) -> None:
        summary["documents"] += 1
        summary["words"] += len(doc)
        summary["entities"].update(s["label"] for s in doc._.deid_spans)
        if spans_file:
            spans_file.write(_jsonl({"id": item.id, "spans": doc._.deid_spans}))
            spans_file.flush()  # before the output exists, so a finished document has its spans
        if folder_mode:
            target = Path(output_path) / item.path  # type: ignore[operator]
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
            partial.write_bytes(doc._.deidentified.encode(encoding))
            os.replace(partial, target)
        else:
            record = dict(item.record)  # type: ignore[arg-type]
            record[text_field] = doc._.deidentified
            out_file.write(_jsonl(record))  # type: ignore[union-attr]

    start = time.perf_counter()
    progress = tqdm(total=total, unit="doc", disable=silent, file=sys.stderr, dynamic_ncols=True)
    try:
        while True:
            chunk = list(itertools.islice(items, CHUNK_SIZE))
            if not chunk:
                break
            pending = deque(chunk)
            texts = ((item.text, item.index) for item in chunk if item.error is None)

            def settle(until: Optional[int]) -> None:
                """Report the items before `until` (all if None) that never came back."""
                while pending and (until is None or pending[0].index != until):
                    gap = pending.popleft()
                    reason = gap.error or errors.by_index.pop(gap.index, "dropped by the pipeline (component error)")
                    fail(gap, reason)
                    progress.update(1)

            def emit(doc, item: Item) -> None:
                if doc._.deidentified is None:
                    fail(item, errors.by_index.pop(item.index, "no de-identified text (component error)"))
                else:
                    succeed(item, doc)
                progress.update(1)

            with nlp.memory_zone():
                try:
                    for doc, index in nlp.pipe(texts, as_tuples=True, batch_size=batch_size, n_process=n_process):
                        settle(index)
                        emit(doc, pending.popleft())
                except Exception as e:  # a component without an error handler failed on the batch
                    if not silent:
                        tqdm.write(f"⚠ a batch failed ({e!r}); going on one document at a time", file=sys.stderr)
                    # nlp(text) goes on after a handled error with the next component (a
                    # doc without entities would then be written): let every error raise.
                    set_error_handler(nlp, raise_error)
                    while pending:
                        item = pending.popleft()
                        if item.error is not None:
                            fail(item, item.error)
                            progress.update(1)
                            continue
                        try:
                            doc = nlp(item.text)
                        except Exception as doc_error:
                            fail(item, f"{type(doc_error).__name__}: {doc_error}")
                            progress.update(1)
                            continue
                        emit(doc, item)
                    set_error_handler(nlp, errors)
            settle(None)
    finally:
        progress.close()
        if out_file is not None and not to_stdout:
            out_file.close()
        elif out_file is not None:
            out_file.flush()
        if spans_file is not None:
            spans_file.close()
        if not folder_mode and input_path != "-" and hasattr(lines, "close"):
            lines.close()  # type: ignore[union-attr]

    seconds = time.perf_counter() - start
    summary["seconds"] = round(seconds, 3)
    summary["words_per_second"] = round(summary["words"] / seconds) if seconds > 0 else 0
    summary["entities"] = dict(sorted(summary["entities"].items()))
    with say:
        _print_summary(msg, summary, output_path)
    return summary


def _deidentify_one_text(nlp: Language, stream: BinaryIO, output_path: str, stdout: Optional[BinaryIO],
                         encoding: str, msg: Printer) -> Dict[str, Any]:
    """Standard input as one plain-text document; the de-identified text to OUTPUT or stdout."""
    start = time.perf_counter()
    data = stream.read()
    summary: Dict[str, Any] = {"documents": 0, "skipped": 0, "failed": 0, "failures": [], "words": 0, "entities": {}}
    set_error_handler(nlp, raise_error)  # nlp(text) would go on after a handled error
    try:
        doc = nlp(data.decode(encoding))
    except UnicodeDecodeError as e:
        summary["failed"], summary["failures"] = 1, [{"id": "stdin", "error": f"cannot decode as {encoding}: {e.reason}"}]
        doc = None
    except Exception as e:
        summary["failed"], summary["failures"] = 1, [{"id": "stdin", "error": f"{type(e).__name__}: {e}"}]
        doc = None
    if doc is not None:
        out = doc._.deidentified.encode(encoding)
        if output_path == "-":
            (stdout or sys.stdout.buffer).write(out)
            (stdout or sys.stdout.buffer).flush()
        else:
            target = Path(output_path)
            partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
            partial.write_bytes(out)
            os.replace(partial, target)
        summary.update(documents=1, words=len(doc), entities=dict(Counter(s["label"] for s in doc._.deid_spans)))
    seconds = time.perf_counter() - start
    summary["seconds"] = round(seconds, 3)
    summary["words_per_second"] = round(summary["words"] / seconds) if seconds > 0 else 0
    with contextlib.redirect_stdout(sys.stderr) if output_path == "-" else contextlib.nullcontext():
        _print_summary(msg, summary, output_path)
    return summary


def _jsonl(row: Dict[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf8")


def _keep_finished_spans(spans_path: Path, out_dir: Path) -> None:
    """Before a folder run resumes: keep the spans lines of documents whose output exists."""
    seen = set()
    kept = []
    with spans_path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # cut off by the interruption
            try:
                doc_id = json.loads(line)["id"]
            except (ValueError, KeyError, TypeError):
                continue
            if doc_id not in seen and (out_dir / doc_id).exists():
                seen.add(doc_id)
                kept.append(line)
    partial = spans_path.with_name(f".{spans_path.name}{PARTIAL_SUFFIX}")
    partial.write_bytes(b"".join(kept))
    os.replace(partial, spans_path)


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
    input_path: Annotated[str, typer.Argument(help="Folder of .txt files, a .jsonl file, or - for stdin")],
    output_path: Annotated[str, typer.Argument(help="Output folder (folder input), .jsonl file, or - for stdout")],
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
) -> None:
    """De-identify clinical notes (folder of .txt, JSONL or stdin) with a trained pipeline."""
    msg = Printer()
    for path in (code or "").split(","):
        if path.strip():
            import_file(Path(path.strip()).stem, path.strip())
    if mode is not None and mode not in ("redact", "mask", "pseudonymize"):
        msg.fail(f"Unknown --mode {mode!r}: choose redact, mask or pseudonymize", exits=1)
    try:
        summary = deidentify_main(
            model, input_path, output_path, text_field=text_field, id_field=id_field,
            spans_output=spans_output, batch_size=batch_size, n_process=n_process, mode=mode,
            rules=rules, seed=seed, resume=resume, stdin_format=stdin_format,
        )
    except ValueError as e:
        with contextlib.redirect_stdout(sys.stderr):
            msg.fail(str(e), exits=1)
    if summary["failed"] and summary["documents"] == 0:
        raise typer.Exit(code=1)


def cli_main(model: Optional[str] = None, argv: Optional[List[str]] = None,
             load: Optional[Callable[[], Language]] = None) -> None:
    """Entry point for a packaged pipeline's __main__: `python -m PKG [deidentify] INPUT OUTPUT ...`.

    In the package's __main__.py: `from . import load; from .deidentify import cli_main;
    cli_main(model=__package__, load=load)` (`load` also works before the wheel is installed).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if model is not None and load is not None:
        _LOADERS[model] = load
    if model is not None:
        if args and args[0] == "deidentify":
            args = args[1:]
        args = [model, *args]
    app = typer.Typer(add_completion=False)
    app.command()(main)
    typer.main.get_command(app).main(args=args, prog_name=f"python -m {model}" if model else None)


if __name__ == "__main__":
    typer.run(main)
