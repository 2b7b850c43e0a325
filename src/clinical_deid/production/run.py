"""A run of the production command: source → pipeline → sink, resumed where the last one stopped.

`deidentify_main` is what tests and other steps call; the CLI builds `RunOptions` and calls
`run`. The documents go through the pipeline in this process (`documents.PipelineRun`) or in
worker processes, local or Ray actors (`workers`), and their outcomes come back here, to the
sink, in input order: the outputs, resume and failure reports are the same either way.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterable, Iterator, Optional, Union

from spacy.language import Language
from wasabi import Printer

from ..label_map import report_label_kinds
from ..rule_labels import report_rule_labels
from .documents import PipelineRun
from .errors import DeidError
from .locks import OutputLock
from .options import RunOptions
from .pieces import PieceError, deidentify_long
from .pipeline import ready_pipeline
from .resume import folder_done, resume_point
from .sinks import FolderSink, JsonlSink, Sink, open_output, write_text_output
from .sources import (Item, count_documents, decode_problem, list_folder, open_lines, read_folder,
                      read_jsonl_items, text_problem, too_large)
from .summary import finish_summary, new_summary, print_summary
from .workers import pooled_run


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
    nlp, errors = ready_pipeline(model, options)
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

    def runner(sink: Sink) -> Callable[[Iterator[Item], Optional[int]], Dict[str, Any]]:
        """What takes the documents to the sink: this process, or workers (local processes or Ray actors)."""
        if options.engine == "local" and options.n_process == 1:
            return PipelineRun(nlp, errors, sink, options)
        return pooled_run(model, nlp, sink, options)

    output, spans_path = Path(options.output_path), options.spans_path
    locked_files = [path for path in ([] if options.to_stdout or folder else [output]) + [spans_path] if path]
    with OutputLock(files=locked_files, folders=[output] if folder else []), messages_stream(options):
        summary = (run_folder if folder else run_jsonl)(runner, options, msg)
        print_summary(msg, summary, options.output_path)
    return summary


def messages_stream(options: RunOptions) -> ContextManager:
    """Messages go to stderr when the output is stdout, else where they are printed."""
    return contextlib.redirect_stdout(sys.stderr) if options.to_stdout else contextlib.nullcontext()


def run_folder(runner: Callable, options: RunOptions, msg: Printer) -> Dict[str, Any]:
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
    return runner(sink)(read_folder(source, todo, options.encoding), len(todo))


def run_jsonl(runner: Callable, options: RunOptions, msg: Printer) -> Dict[str, Any]:
    """JSONL (a file or stdin) or Parquet into JSONL: one output line per input line (row), resumable by counting."""
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
            lines = stack.enter_context(open_lines(source))
        out_file = open_output(out_path, append=bool(skip)) if out_path else (options.stdout or sys.stdout.buffer)
        spans_file = open_output(spans_path, append=bool(skip)) if spans_path else None
        sink = JsonlSink(new_summary(skip), out_file, options.output_path, spans_file, str(spans_path),
                         options.text_field, options.id_field, options.silent, close_out=out_path is not None)
        items = read_jsonl_items(lines, options.text_field, options.id_field, skip, options.encoding,
                                 options.patient_id_field)
        return runner(sink)(items, total)


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
