"""A run of the production command: source → pipeline → sink, resumed where the last one stopped.

`deidentify_main` is what tests and other steps call; the CLI builds `RunOptions` and calls
`run`. Documents go through `nlp.pipe` in chunks (memory zones); a document that fails is
reported by id and the run goes on; one longer than `--max-chars` goes through `pieces`.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, ContextManager, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import raise_error
from tqdm import tqdm
from wasabi import Printer

from ..label_map import apply_label_map, report_label_kinds
from ..rule_labels import report_rule_labels
from .errors import DeidError
from .keys import use_key
from .locks import OutputLock
from .options import CHUNK_SIZE, RunOptions
from .pieces import PieceError, deidentify_long
from .pipeline import ErrorLog, load_pipeline, make_doc, prepare_pipeline, set_error_handler
from .resume import folder_done, resume_point
from .sinks import FolderSink, JsonlSink, Sink, open_output, write_text_output
from .sources import (Item, count_documents, decode_problem, list_folder, read_folder, read_jsonl_items,
                      text_problem, too_large)
from .summary import finish_summary, new_summary, print_summary


def deidentify_main(model: Union[str, Path, Language], input_path: Union[str, Path], output_path: Union[str, Path],
                    **options: Any) -> Dict[str, Any]:
    """De-identify a folder of .txt, a JSONL file or stdin; return the run's summary.

    model (Union[str, Path, Language]): a path, a package name or a Language (which gets the deid
        components and the error handlers in place).
    input_path / output_path: see RunOptions.
    options: the other fields of RunOptions (text_field, spans_output, key, silent, stdin, ...).
        Pseudonymizing without `key` needs `insecure_demo_key`.
    RETURNS (Dict[str, Any]): documents, skipped, failed, failures, tokens, entities, seconds,
        tokens_per_second. Raises DeidError (a ValueError) for what the run cannot do: paths that
        would overwrite the input, a locked or damaged output, a failed write.
    """
    return run(model, RunOptions(str(input_path), str(output_path), **options))


def run(model: Union[str, Path, Language], options: RunOptions) -> Dict[str, Any]:
    """Check the options, prepare the pipeline, lock the outputs, run; the summary (see deidentify_main)."""
    options.check()
    nlp = load_pipeline(model)
    prepare_pipeline(nlp, mode=options.mode, rules=options.rules, seed=options.seed)
    apply_label_map(nlp, options.label_map)  # type: ignore[arg-type]  (check read it)
    use_key(nlp, options.key, options.insecure_demo_key)
    nlp.max_length = max(nlp.max_length, options.max_chars + 1)
    errors = ErrorLog()
    set_error_handler(nlp, errors)
    msg = Printer(no_print=options.silent)
    with messages_stream(options):
        report_label_kinds(nlp, msg)
        report_rule_labels(nlp, msg)  # (which NER label each rule's matches take)
    if options.from_stdin and options.stdin_format == "text":
        summary = run_one_text(nlp, options)
        with messages_stream(options):
            print_summary(msg, summary, options.output_path)
        return summary
    folder = options.folder_input()
    output, spans_path = Path(options.output_path), options.spans_path
    locked_files = [path for path in ([] if options.to_stdout or folder else [output]) + [spans_path] if path]
    with OutputLock(files=locked_files, folders=[output] if folder else []), messages_stream(options):
        summary = (run_folder if folder else run_jsonl)(nlp, errors, options, msg)
        print_summary(msg, summary, options.output_path)
    return summary


def messages_stream(options: RunOptions) -> ContextManager:
    """Messages go to stderr when the output is stdout, else where they are printed."""
    return contextlib.redirect_stdout(sys.stderr) if options.to_stdout else contextlib.nullcontext()


def run_folder(nlp: Language, errors: ErrorLog, options: RunOptions, msg: Printer) -> Dict[str, Any]:
    """A folder of .txt files into a folder, the outputs an earlier run finished skipped."""
    source, out_dir, spans_path = Path(options.input_path), Path(options.output_path), options.spans_path
    if out_dir.exists() and not out_dir.is_dir():
        raise DeidError(f"{out_dir} is a file; a folder input needs an output folder")
    files, broken = list_folder(source)
    todo = files
    if options.resume:
        done = folder_done(files, out_dir, spans_path, options.encoding, msg)
        todo = [rel for rel in files if rel not in done]
    spans_file = open_output(spans_path, append=options.resume) if spans_path is not None else None
    sink = FolderSink(new_summary(len(files) - len(todo)), out_dir, spans_file, str(spans_path), options.encoding,
                      options.silent)
    for item in broken:
        sink.fail(item, item.error)  # type: ignore[arg-type]
    return PipelineRun(nlp, errors, sink, options)(read_folder(source, todo, options.encoding), len(todo))


def run_jsonl(nlp: Language, errors: ErrorLog, options: RunOptions, msg: Printer) -> Dict[str, Any]:
    """JSONL (a file or stdin) into JSONL: one output line per input line, resumable by counting."""
    source = None if options.from_stdin else Path(options.input_path)
    out_path = None if options.to_stdout else Path(options.output_path)
    spans_path = options.spans_path
    skip = 0
    if options.resume and out_path is not None and out_path.is_file():  # (not /dev/full and other devices)
        skip = resume_point(source, out_path, spans_path, options.text_field, options.id_field, options.encoding)
    total = None
    with contextlib.ExitStack() as stack:
        if source is None:
            lines: Iterable[bytes] = options.stdin or sys.stdin.buffer
        else:
            total = count_documents(source) - skip
            lines = stack.enter_context(source.open("rb"))
        out_file = open_output(out_path, append=bool(skip)) if out_path else (options.stdout or sys.stdout.buffer)
        spans_file = open_output(spans_path, append=bool(skip)) if spans_path else None
        sink = JsonlSink(new_summary(skip), out_file, options.output_path, spans_file, str(spans_path),
                         options.text_field, options.id_field, options.silent, close_out=out_path is not None)
        items = read_jsonl_items(lines, options.text_field, options.id_field, skip, options.encoding,
                                 options.patient_id_field)
        return PipelineRun(nlp, errors, sink, options)(items, total)


def run_one_text(nlp: Language, options: RunOptions) -> Dict[str, Any]:
    """Standard input as one plain-text document; the de-identified text to OUTPUT or stdout."""
    start = time.perf_counter()
    data = (options.stdin or sys.stdin.buffer).read()
    summary = new_summary(0)
    result = None
    try:
        text = data.decode(options.encoding)
        error = text_problem(text, "standard input") or too_large(text, options.max_doc_chars)
        if error is None:
            result = deidentify_long(nlp, text, None, options.max_chars)
    except UnicodeDecodeError as err:
        error = decode_problem(err, options.encoding)
    except PieceError as err:
        error = str(err)
    if result is None:
        summary["failed"], summary["failures"] = 1, [{"id": "stdin", "error": error}]
    else:
        output, spans, tokens = result
        write_text_output(output.encode(options.encoding), options.output_path, options.stdout)
        summary.update(documents=1, tokens=tokens)
        summary["entities"].update(span["label"] for span in spans)
    return finish_summary(summary, time.perf_counter() - start)


class PipelineRun:
    """The pipeline over a source's items, each result to the sink in input order.

    nlp.pipe returns the documents it could process; the ones it left out (failed before,
    longer than --max-chars, dropped by a component's error handler) are settled in their
    place, so that outputs stay in input order.
    """

    def __init__(self, nlp: Language, errors: ErrorLog, sink: Sink, options: RunOptions) -> None:
        self.nlp, self.errors, self.sink, self.options = nlp, errors, sink, options
        self.progress: Optional[tqdm] = None

    def __call__(self, items: Iterator[Item], total: Optional[int]) -> Dict[str, Any]:
        """Run over `items` (`total` of them, if known) in chunks; the finished summary."""
        start = time.perf_counter()
        self.progress = tqdm(total=total, unit="doc", disable=self.options.silent, file=sys.stderr,
                             dynamic_ncols=True)
        try:
            while True:
                chunk = list(itertools.islice(items, CHUNK_SIZE))
                if not chunk:
                    break
                self.run_chunk(chunk)
        except BaseException:
            self.progress.close()
            self.sink.close(quiet=True)
            raise
        self.progress.close()
        self.sink.close()
        return finish_summary(self.sink.summary, time.perf_counter() - start)

    def run_chunk(self, chunk: List[Item]) -> None:
        """One chunk through nlp.pipe in a memory zone; one document at a time after a batch fails."""
        for item in chunk:
            if item.error is None:
                item.error = too_large(item.text, self.options.max_doc_chars)  # type: ignore[arg-type]
        pending = deque(chunk)
        with self.nlp.memory_zone():
            try:
                for doc, index in self.nlp.pipe(self.docs(chunk), as_tuples=True, batch_size=self.options.batch_size,
                                                n_process=self.options.n_process):
                    self.settle_until(pending, index)
                    self.emit(doc, pending.popleft())
            except DeidError:
                raise
            except Exception as err:  # a component without an error handler failed on the batch
                if not self.options.silent:
                    tqdm.write(f"⚠ a batch failed ({type(err).__name__}); going on one document at a time",
                               file=sys.stderr)
                self.one_at_a_time(pending)
        self.settle_until(pending, None)  # (outside the memory zone, as it always was: long notes)

    def docs(self, chunk: List[Item]) -> Iterator[Tuple[Doc, int]]:
        """(doc, index) of the chunk's documents for nlp.pipe; tokenized here, so that a tokenizer
        error fails its document only. Failed and long documents are left out (settled in order)."""
        for item in chunk:
            if item.error is not None or len(item.text) > self.options.max_chars:  # type: ignore[arg-type]
                continue
            try:
                doc = make_doc(self.nlp, item.text, item.group)  # type: ignore[arg-type]
            except Exception as err:
                item.error = f"tokenizer failed: {type(err).__name__}"
                continue
            yield doc, item.index

    def settle_until(self, pending: Deque[Item], until: Optional[int]) -> None:
        """Settle the pending items before index `until` (all if None) that never came back."""
        while pending and (until is None or pending[0].index != until):
            self.settle(pending.popleft(), "dropped by the pipeline (component error)")

    def settle(self, item: Item, dropped: str) -> None:
        """A document that did not come back from nlp.pipe: failed before, long, or dropped."""
        if item.error is None and len(item.text) > self.options.max_chars:  # type: ignore[arg-type]
            group = item.group or f"note {item.id}"
            try:
                text, spans, tokens = deidentify_long(self.nlp, item.text, group, self.options.max_chars)  # type: ignore[arg-type]
            except PieceError as err:
                self.sink.fail(item, str(err))
            else:
                self.sink.succeed(item, text, spans, tokens)
        else:
            self.sink.fail(item, item.error or self.errors.by_index.pop(item.index, dropped))
        self.progress.update(1)  # type: ignore[union-attr]

    def emit(self, doc: Doc, item: Item) -> None:
        """A document nlp.pipe returned: its output, or the reason a component left none."""
        if doc._.deidentified is None:
            self.sink.fail(item, self.errors.by_index.pop(item.index, "no de-identified text (component error)"))
        else:
            self.sink.succeed(item, doc._.deidentified, doc._.deid_spans, len(doc))
        self.progress.update(1)  # type: ignore[union-attr]

    def one_at_a_time(self, pending: Deque[Item]) -> None:
        """After a batch failed: each pending document alone, every error raised (nlp(doc) goes on
        after a handled error with the next component, and would write a doc without entities)."""
        set_error_handler(self.nlp, raise_error)
        try:
            while pending:
                item = pending.popleft()
                if item.error is not None or len(item.text) > self.options.max_chars:  # type: ignore[arg-type]
                    self.settle(item, "")
                    continue
                try:
                    doc = self.nlp(make_doc(self.nlp, item.text, item.group))  # type: ignore[arg-type]
                except Exception as err:
                    self.sink.fail(item, f"pipeline failed: {type(err).__name__}")
                    self.progress.update(1)  # type: ignore[union-attr]
                    continue
                self.emit(doc, item)
        finally:
            set_error_handler(self.nlp, self.errors)
