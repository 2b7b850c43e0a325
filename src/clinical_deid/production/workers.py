"""Worker processes for a run: blocks of documents de-identified away from the process that reads and writes.

Why: with spaCy's `nlp.pipe(n_process=N)` the main process tokenizes every note and
(de)serializes every Doc on its way to and from the workers; on 2 cores, 2 processes gave
1.07x the speed of one. Here a worker gets a block of raw `Item`s and does everything
(tokenizer, pipeline, rules, surrogates, long notes, failures, in `documents.PipelineRun`);
it sends back only each document's outcome: the de-identified text, its spans and token
count, or the reason it failed. The main process reads, hands out blocks, and writes the
outcomes through the same sink as a one-process run, in input order: outputs, resume and
failure reports are those of the one-process run, byte for byte, whichever engine runs
the workers: local processes (`LocalPool`) or Ray actors (`ray_engine.RayPool`).

Each worker uses `options.threads` BLAS / torch threads (default: the cores shared out
between the workers), so that N workers do not start N times the machine's threads.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import multiprocessing
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from tqdm import tqdm

from .documents import PipelineRun, timed_run
from .errors import DeidError
from .options import RunOptions
from .pipeline import ready_pipeline
from .sinks import Sink
from .sources import Item
from .summary import new_summary

# ("ok", text, spans, tokens) or ("fail", reason), one per document of a block, in its order.
Outcome = Tuple[Any, ...]


def limit_threads(threads: int) -> None:
    """At most `threads` BLAS/OpenMP threads (threadpoolctl) and torch threads in this process."""
    if threads < 1:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:  # (a transformer pipeline); never imported for a CNN one
        sys.modules["torch"].set_num_threads(threads)


def default_threads(workers: int) -> int:
    """Threads per worker: the cores this process may use, shared out (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


class RecordingSink(Sink):
    """A worker's sink: keeps each document's outcome, in order, for the main process to write."""

    def __init__(self) -> None:
        super().__init__(new_summary(0), None, "", True)
        self.outcomes: List[Outcome] = []

    def fail(self, item: Item, reason: str) -> None:
        self.outcomes.append(("fail", reason))

    def succeed(self, item: Item, text: str, spans: List[Dict[str, Any]], tokens: int) -> None:
        self.outcomes.append(("ok", text, spans, tokens))


class BlockWorker:
    """A worker's pipeline (made ready once) and the blocks it de-identifies.

    model (Union[str, Path, Language]): the pipeline, or its name or path (loaded in the worker).
    options (RunOptions): the run's options (without its streams: see `worker_options`).
    """

    def __init__(self, model: Union[str, Path, Language], options: RunOptions) -> None:
        limit_threads(options.threads)
        self.options = options
        self.nlp, self.errors = ready_pipeline(model, options)

    def __call__(self, items: List[Item]) -> List[Outcome]:
        """The outcomes of a block's documents, in its order."""
        sink = RecordingSink()
        run = PipelineRun(self.nlp, self.errors, sink, self.options)
        run.progress = tqdm(disable=True)
        run.run_chunk(items)
        return sink.outcomes


def worker_options(options: RunOptions) -> RunOptions:
    """The options a worker gets: the same, less the streams (standard input and output stay here),
    with its share of the threads, and one process: its own (nlp.pipe must not start more)."""
    threads = options.threads or default_threads(options.n_process)
    return dataclasses.replace(options, stdin=None, stdout=None, n_process=1, threads=threads)


def lean(item: Item) -> Item:
    """What a worker needs of an item: the JSONL record (the text a second time) stays here."""
    return Item(item.index, item.id, item.path, item.text, None, item.error, item.group)


# --------------------------------------------------------------------------
# Local processes
# --------------------------------------------------------------------------

_WORKER: Optional[Callable[[List[Item]], List[Outcome]]] = None
_START_ERROR: Optional[str] = None


def _start_worker(factory: Callable[[], Callable[[List[Item]], List[Outcome]]]) -> None:
    """A pool process's start. An error is kept for its first block, not raised here:
    multiprocessing would start the process again, and again, for ever."""
    global _WORKER, _START_ERROR
    try:
        _WORKER = factory()
    except (Exception, SystemExit) as err:
        _START_ERROR = str(err) if isinstance(err, DeidError) else type(err).__name__


def _work(items: List[Item]) -> List[Outcome]:
    if _WORKER is None:
        raise DeidError(f"the worker could not start: {_START_ERROR}")
    return _WORKER(items)


class LocalPool:
    """`workers` local processes, each with its own worker from `factory`.

    Forked where the platform can (the pipeline the main process loaded is shared, not loaded
    again), spawned elsewhere (then `factory` loads it by name or path).
    """

    def __init__(self, factory: Callable[[], Callable], workers: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.size = workers
        self.pool = context.Pool(workers, initializer=_start_worker, initargs=(factory,))

    def submit(self, items: List[Item]):
        return self.pool.apply_async(_work, (items,))

    def result(self, handle) -> List[Outcome]:
        return handle.get()

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


# --------------------------------------------------------------------------
# The main process's side
# --------------------------------------------------------------------------


def block_id(entry: Any) -> str:
    """An entry's id for a message: an Item's or a record's "id", never its text."""
    return str(entry.id if isinstance(entry, Item) else entry.get("id", "?") if isinstance(entry, dict) else "?")


def in_order(pool, blocks: Iterable[List[Any]], settle: Callable[[List[Any], Any], None],
             lean: Callable[[List[Any]], Any] = lambda block: block) -> None:
    """Each block to the pool's workers (as `lean(block)`), `settle(block, result)` in the blocks' order.

    At most two blocks per worker are out at once, so the input is read as the workers go
    (memory stays bounded on any input size). A worker that fails stops the run with a
    DeidError naming its block's first and last ids; the pool is closed in any case.
    """
    out: Deque[Tuple[List[Any], Any]] = deque()

    def next_result() -> None:
        block, handle = out.popleft()
        try:
            result = pool.result(handle)
        except Exception as err:
            reason = str(err) if isinstance(err, DeidError) else type(err).__name__
            first, last = (block_id(x) for x in (block[0], block[-1]))
            raise DeidError(f"a worker failed on the documents {first} to {last} ({reason}); "
                            f"the documents before are kept: run again to resume") from None
        settle(block, result)

    try:
        for block in blocks:
            out.append((block, pool.submit(lean(block))))
            if len(out) >= 2 * pool.size:
                next_result()
        while out:
            next_result()
    finally:
        pool.close()


class PooledRun:
    """Blocks of items to a pool's workers, their outcomes to the sink in input order.

    A worker that fails stops the run (`in_order`); what was written stays, and the next run
    resumes after it.
    """

    def __init__(self, pool, sink: Sink, options: RunOptions) -> None:
        self.pool, self.sink, self.options = pool, sink, options
        self.progress: Optional[tqdm] = None

    def __call__(self, items: Iterator[Item], total: Optional[int]) -> Dict[str, Any]:
        def work(progress: tqdm) -> None:
            self.progress = progress
            blocks = iter(lambda: list(itertools.islice(items, self.options.block_size)), [])
            in_order(self.pool, blocks, self.settle, lean=lambda block: [lean(item) for item in block])

        return timed_run(self.sink, self.options, total, work)

    def settle(self, block: List[Item], outcomes: List[Outcome]) -> None:
        """Write a block's outcomes in its order."""
        for item, outcome in zip(block, outcomes):
            if outcome[0] == "ok":
                self.sink.succeed(item, *outcome[1:])
            else:
                self.sink.fail(item, outcome[1])
        self.progress.update(len(block))  # type: ignore[union-attr]


def pooled_run(model: Union[str, Path, Language], nlp: Language, sink: Sink, options: RunOptions) -> PooledRun:
    """The run over workers the options ask for: `options.n_process` local processes, or Ray actors.

    model: the pipeline as the run was given it (Ray actors load it by name or path);
    nlp: the pipeline this process made ready (forked local workers share it).
    """
    opts = worker_options(options)
    if options.engine == "ray":  # (the CPUs each actor asks Ray for: --threads, default 1)
        from .ray_engine import RayPool

        if isinstance(model, Language):
            raise DeidError("--engine ray loads the pipeline in each actor: give its package name or folder")
        opts.threads = options.threads or 1
        pool: Any = RayPool(functools.partial(BlockWorker, str(model), opts), options.n_process, opts.threads,
                            options.ray_address)
    else:
        pool = LocalPool(functools.partial(BlockWorker, nlp if "fork" in multiprocessing.get_all_start_methods()
                                           else model, opts), options.n_process)
    return PooledRun(pool, sink, options)
