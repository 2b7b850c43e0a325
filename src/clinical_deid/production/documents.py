"""Documents through the pipeline: `nlp.pipe` over a source's items, each outcome to a sink in input order.

Documents go through `nlp.pipe` in chunks (memory zones); a document that fails is reported
by id and the run goes on; one longer than `--max-chars` goes through `pieces`. A run with one
process calls it directly; worker processes (`workers`) call it on their blocks.
"""
from __future__ import annotations

import itertools
import sys
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import raise_error
from tqdm import tqdm

from .errors import DeidError
from .options import CHUNK_SIZE, RunOptions
from .pieces import PieceError, deidentify_long
from .pipeline import ErrorLog, make_doc, set_error_handler
from .sinks import Sink
from .sources import Item, too_large
from .summary import finish_summary


def timed_run(sink: Sink, options: RunOptions, total: Optional[int], work: Callable[[tqdm], None]) -> Dict[str, Any]:
    """`work(progress bar)` timed; the sink closed after it (quietly after an error); the finished summary."""
    start = time.perf_counter()
    progress = tqdm(total=total, unit="doc", disable=options.silent, file=sys.stderr, dynamic_ncols=True)
    try:
        work(progress)
    except BaseException:
        progress.close()
        sink.close(quiet=True)
        raise
    progress.close()
    sink.close()
    return finish_summary(sink.summary, time.perf_counter() - start)


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

        def work(progress: tqdm) -> None:
            self.progress = progress
            for chunk in iter(lambda: list(itertools.islice(items, CHUNK_SIZE)), []):
                self.run_chunk(chunk)

        return timed_run(self.sink, self.options, total, work)

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
