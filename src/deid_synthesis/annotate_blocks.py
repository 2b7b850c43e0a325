"""Machine annotation on workers (`annotate --engine ray`, or local processes): a synthetic corpus of
millions of notes labelled by actors that load the annotator once.

The production command's pieces do the work (`clinical_deid.production.workers`: local
processes or Ray actors, blocks handed out at most two per worker, results taken back in
input order). A worker gets a block of notes (with whether each goes to the dev side),
chunks and labels them exactly as `annotate.label_chunks` does in one process, and sends back
its two DocBins as bytes and its counts; the main process merges them in order, so the
corpus holds the same chunks, in the same order, with the same entities and provenance.
"""
from __future__ import annotations

import functools
from collections import Counter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from spacy.tokens import DocBin

from clinical_deid.production.workers import LocalPool, in_order, limit_threads

BLOCK_SIZE = 64  # notes per block (a note is chunked into several docs)


class AnnotationWorker:
    """An annotator loaded once in a worker, and the blocks of notes it labels.

    model (str): the annotator's path or package name; code (Optional[str]): a Python file of
    registered functions it needs; max_words, batch_size: as `annotate`; threads: BLAS / torch threads.
    """

    def __init__(self, model: str, code: Optional[str], max_words: int, batch_size: int, threads: int,
                 gpu_id: int = -1) -> None:
        import spacy

        limit_threads(threads)
        if code:
            spacy.util.import_file("python_code", code)
        if gpu_id >= 0:
            spacy.require_gpu(gpu_id)
        self.nlp = spacy.load(model)
        self.max_words, self.batch_size = max_words, batch_size

    def __call__(self, block: List[Dict[str, Any]]) -> Tuple[bytes, bytes, Dict[str, Any]]:
        """(train DocBin bytes, dev DocBin bytes, counts) of a block of {"id", "record", "dev"}."""
        from deid_synthesis.annotate import label_chunks, synthetic_chunks

        notes: Counter = Counter()
        chunks = synthetic_chunks(self.nlp, ((None, entry["record"]) for entry in block), self.max_words, notes)
        dev_ids = {entry["id"] for entry in block if entry["dev"]}
        train, dev, counts = label_chunks(self.nlp, chunks, dev_ids, self.batch_size, 1, False)
        return train.to_bytes(), dev.to_bytes(), {"notes": dict(notes), **counts}


def label_on_workers(model: str, records: Iterable[Tuple[str, dict]], dev_ids: Set[str], *, engine: str,
                     workers: int, code: Optional[str] = None, max_words: int = 128, batch_size: int = 64,
                     threads: int = 1, ray_address: Optional[str] = None, block_size: int = BLOCK_SIZE,
                     gpu_id: int = -1, progress=None) -> Tuple[DocBin, DocBin, Dict, Counter]:
    """Label the notes on `workers` local processes or Ray actors; (train, dev, counts, notes) as one process would.

    model (str): the annotator (loaded by each worker: a path all nodes can read, or a package).
    records: ("file:line", record) pairs, as annotate.read_synthetic yields them.
    engine (str): "local" or "ray" (Ray actors of `threads` CPUs; `ray_address`: a cluster to join).
    progress: a tqdm bar to advance by the chunks of each block (optional).
    """
    factory = functools.partial(AnnotationWorker, model, code, max_words, batch_size, threads, gpu_id)
    if engine == "ray":
        from clinical_deid.production.ray_engine import RayPool

        pool: Any = RayPool(factory, workers, threads, ray_address)
    else:
        pool = LocalPool(factory, workers)
    train, dev = DocBin(store_user_data=True), DocBin(store_user_data=True)
    counts: Dict[str, Any] = {"chunks": 0, "tokens": 0, "words": 0, "labels": Counter()}
    notes: Counter = Counter()

    def settle(block: List[Dict[str, Any]], result: Tuple[bytes, bytes, Dict[str, Any]]) -> None:
        train_bytes, dev_bytes, block_counts = result
        train.merge(DocBin(store_user_data=True).from_bytes(train_bytes))
        dev.merge(DocBin(store_user_data=True).from_bytes(dev_bytes))
        notes.update(block_counts.pop("notes"))
        for key, value in block_counts.items():
            counts[key] += value
        if progress is not None:
            progress.update(block_counts["chunks"])

    in_order(pool, blocks_of(records, dev_ids, block_size), settle)
    return train, dev, counts, notes


def blocks_of(records: Iterable[Tuple[str, dict]], dev_ids: Set[str], size: int) -> Iterator[List[Dict[str, Any]]]:
    """The notes in blocks of `size` entries {"id", "record", "dev"}."""
    block: List[Dict[str, Any]] = []
    for _, record in records:
        block.append({"id": record["id"], "record": record, "dev": record["id"] in dev_ids})
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
