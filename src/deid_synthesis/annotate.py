"""Machine-annotate synthetic notes: the annotator labels them into a DocBin to train on.

The generator's notes carry no labels. The annotator (the gold-trained NER pipeline, CPU or
transformer) labels them, in chunks of at most `max_words` words (128, as in the paper):
an encoder sees at most 512 word pieces, and a generated note can run on far longer. Chunks
are cut on sentence boundaries found with the annotator's own tokenizer and a rule-based
sentencizer (a sentence longer than the limit is cut at the limit), before NER, so no
entity is ever cut.

Each chunk is one Doc of the output DocBin; its `user_data` keeps where it came from:

    id            "<source id>#<chunk index>"
    source_id     the note's "id" in the JSONL (keep chunks of one note on one side of a split)
    chunk         chunk index within the note (0, 1, ...)
    char_offset   where the chunk starts in the note's text
    provenance    every other field of the JSONL line as the generator wrote it (prompt_id,
                  prompt, sample_index, seed, and its own provenance: base model, adapter,
                  sampling settings, ...)

With `--dev-output`, a seeded share of the notes (10 % by default; every chunk of a note on
the same side) goes to a second DocBin: the dev set the synthetic model is selected on, as
whoever trains it is assumed to have no real data.

The report puts the entities per label of the synthetic corpus next to the gold corpus's,
as counts and per 1,000 words, with their ratio: a label at ratio 0.2 is one the generator
under-produces (or the annotator misses), whatever the corpus sizes. The printout and the
report hold counts and labels only, never text.

    python -m scripts.annotate MODEL synthetic.jsonl corpus/x/synthetic/train.spacy \\
        --dev-output corpus/x/synthetic/dev.spacy --gold corpus/x/train.spacy \\
        --report corpus/x/synthetic/annotate.json --code src/clinical_deid/tokenizer.py
"""
import random
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from tqdm import tqdm

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from clinical_deid.io import read_docbin, read_jsonl, write_docbin
from clinical_deid.tokenizer import count_words
from deid_synthesis.annotate_blocks import label_on_workers
from deid_synthesis.corpus.docs import split_doc
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.llm_annotation.stats import llm_stats, per_1000


def llm_report(nlp: Language, n_notes: int) -> Optional[Dict]:
    """An LLM annotator's requests, tokens (also per 1,000 notes) and span counts; None for an NER model."""
    stats = llm_stats(nlp)
    if stats is not None:
        stats["usage_per_1000_notes"] = per_1000(stats, n_notes)
    return stats


def read_synthetic(path: Path) -> Iterator[Tuple[str, dict]]:
    """The generator's notes, through the project's JSONL reader.

    path (Path): the JSONL file; a record needs a string "text"; "id" defaults to
        "<file stem>-<line>".
    RETURNS (Iterator[Tuple[str, dict]]): ("file:line", record) per non-blank line. Anything
        malformed raises clinical_deid.io.DataError naming the file and line, never the text.
    """
    path = Path(path)
    for where, _, record in read_jsonl(path):
        line_no = where.rsplit(":", 1)[1]
        record["id"] = str(record.get("id", f"{path.stem}-{line_no}"))
        yield where, record


def synthetic_chunks(nlp: Language, records: Iterable[Tuple[str, dict]], max_words: int,
                     counts: Counter) -> Iterator[Tuple[Doc, dict]]:
    """Tokenize each note with the annotator's tokenizer and cut it into chunks.

    Yields (chunk Doc, provenance dict) for `nlp.pipe(..., as_tuples=True)`; the context
    travels with the Doc through worker processes too. `counts` tallies notes read and
    empty notes skipped.
    """
    for _, record in records:
        counts["documents"] += 1
        doc = nlp.make_doc(record["text"])
        if count_words(doc) == 0:
            counts["empty_documents"] += 1
            continue
        doc.user_data["id"] = record["id"]
        provenance = {k: v for k, v in record.items() if k not in ("text", "id")}
        for index, chunk in enumerate(split_doc(doc, "chunks", max_words)):
            context = {"id": f"{record['id']}#{index}", "source_id": record["id"], "chunk": index,
                       "char_offset": chunk.user_data["char_offset"], "provenance": provenance}
            yield chunk, context


def corpus_stats(docs: Iterable[Doc]) -> Dict:
    """Documents, words (`count_words`) and entities per label of a set of Docs."""
    n_docs = n_words = 0
    labels: Counter = Counter()
    for doc in docs:
        n_docs += 1
        n_words += count_words(doc)
        labels.update(ent.label_ for ent in doc.ents)
    return {"documents": n_docs, "words": n_words, "entities": sum(labels.values()),
            "per_label": dict(labels.most_common())}


def per_1k(count: int, words: int) -> float:
    """A count per 1,000 words (0 for no words)."""
    return 1000 * count / words if words else 0.0


def compare_labels(synthetic: Dict, gold: Optional[Dict], labels: Iterable[str] = ()) -> Dict[str, Dict]:
    """Per label: count and rate per 1,000 words in each corpus, and the ratio of the rates.

    ratio = synthetic rate / gold rate (None without gold, or when gold has no such entity).
    Labels the annotator knows but never predicted appear with 0.
    """
    names = set(labels) | set(synthetic["per_label"]) | set(gold["per_label"] if gold else ())
    rows = {}
    for label in names:
        in_synthetic = synthetic["per_label"].get(label, 0)
        row = {"synthetic": in_synthetic, "synthetic_per_1k": per_1k(in_synthetic, synthetic["words"])}
        if gold is not None:
            in_gold = gold["per_label"].get(label, 0)
            row.update(gold=in_gold, gold_per_1k=per_1k(in_gold, gold["words"]))
            row["ratio"] = row["synthetic_per_1k"] / row["gold_per_1k"] if in_gold else None
        rows[label] = row
    order = sorted(rows, key=lambda lab: (-rows[lab].get("gold", 0), -rows[lab]["synthetic"], lab))
    return {label: rows[label] for label in order}


def held_out_ids(jsonl_path: Path, share: float, seed: int) -> set:
    """Ids of a seeded `share` of the non-blank notes (at least one, and never all of them)."""
    if not 0 < share < 1:
        raise CorpusError(f"--dev-share must be between 0 and 1, not {share}")
    ids = list(dict.fromkeys(record["id"] for _, record in read_synthetic(jsonl_path) if record["text"].strip()))
    if len(ids) < 2:
        raise CorpusError(f"{jsonl_path}: {len(ids)} note(s): too few to hold out a dev set")
    random.Random(seed).shuffle(ids)
    return set(ids[:min(len(ids) - 1, max(1, round(share * len(ids))))])


def label_chunks(nlp: Language, chunks: Iterable[Tuple[Doc, dict]], dev_ids: Set[str], batch_size: int,
                 n_process: int, progress: bool) -> Tuple[DocBin, DocBin, Dict]:
    """Run the annotator over the chunks; each labelled chunk goes to the train or the dev DocBin.

    RETURNS (Tuple[DocBin, DocBin, Dict]): train, dev, and the counts (chunks, tokens, words,
        entities per label).
    """
    docbin, dev_docbin = DocBin(store_user_data=True), DocBin(store_user_data=True)
    counts = {"chunks": 0, "tokens": 0, "words": 0, "labels": Counter()}
    annotated = nlp.pipe(chunks, as_tuples=True, batch_size=batch_size, n_process=n_process)
    for doc, context in tqdm(annotated, desc="chunks", unit=" chunks", disable=not progress):
        # Only the provenance goes into the corpus: pipeline extension data stored in
        # user_data (e.g. a transformer's output) would bloat the DocBin.
        doc.user_data.clear()
        doc.user_data.update(context)
        counts["chunks"] += 1
        counts["tokens"] += len(doc)
        counts["words"] += count_words(doc)
        counts["labels"].update(ent.label_ for ent in doc.ents)
        (dev_docbin if context["source_id"] in dev_ids else docbin).add(doc)
    return docbin, dev_docbin, counts


def label_on_ray(model: Optional[str], jsonl_path: Path, dev_ids: Set[str], actors: int, code: Optional[str],
                 max_words: int, batch_size: int, threads: int, ray_address: Optional[str],
                 progress: bool) -> Tuple[DocBin, DocBin, Dict, Counter]:
    """`label_chunks` on Ray actors that each load MODEL (`annotate_blocks`): (train, dev, counts, notes)."""
    if model is None:
        raise CorpusError("--engine ray loads the annotator in each actor: give its path or package name")
    with tqdm(desc="chunks", unit=" chunks", disable=not progress) as bar:
        return label_on_workers(model, read_synthetic(jsonl_path), dev_ids, engine="ray", workers=actors, code=code,
                                max_words=max_words, batch_size=batch_size, threads=threads, ray_address=ray_address,
                                progress=bar)


def annotate(nlp: Language, jsonl_path: Path, output_path: Path, max_words: int = 128, batch_size: int = 64,
             n_process: int = 1, gold_path: Optional[Path] = None, dev_output: Optional[Path] = None,
             dev_share: float = 0.1, seed: int = 0, progress: bool = False, engine: str = "local",
             model: Optional[str] = None, code: Optional[str] = None, ray_address: Optional[str] = None,
             threads: int = 1) -> Dict:
    """Label the synthetic notes in chunks and write them as a DocBin; return the report.

    nlp (Language): the annotator.
    jsonl_path (Path): the generator's notes; output_path (Path): the DocBin of labelled chunks.
    max_words (int): most words (count_words) per chunk; batch_size, n_process: as `nlp.pipe`.
    gold_path (Optional[Path]): a gold DocBin to compare the entities per label with.
    dev_output (Optional[Path]): where a seeded `dev_share` of the notes (all chunks of a note
        together) go instead: the synthetic model's dev set, since the real data is not at hand.
    seed (int): seed of the dev hold-out; progress (bool): show a progress bar.
    engine (str): "local", or "ray": `n_process` Ray actors of `threads` CPUs load `model` (and `code`)
        and label blocks of notes (`label_on_ray`); `ray_address`: a cluster to join.
    RETURNS (Dict): the report (counts and labels, never text). DocBins are written atomically,
        so an error never leaves a half-written corpus behind.
    """
    if max_words < 1:
        raise CorpusError(f"--max-words must be at least 1, not {max_words}")
    jsonl_path, output_path = Path(jsonl_path), Path(output_path)
    dev_ids = held_out_ids(jsonl_path, dev_share, seed) if dev_output is not None else set()
    gold = corpus_stats(read_docbin(gold_path, nlp.vocab)) if gold_path is not None else None
    notes: Counter = Counter()
    start = time.perf_counter()
    if engine == "ray":
        docbin, dev_docbin, counts, notes = label_on_ray(model, jsonl_path, dev_ids, n_process, code, max_words,
                                                         batch_size, threads, ray_address, progress)
    else:
        chunks = synthetic_chunks(nlp, read_synthetic(jsonl_path), max_words, notes)
        docbin, dev_docbin, counts = label_chunks(nlp, chunks, dev_ids, batch_size, n_process, progress)
    seconds = time.perf_counter() - start
    if notes["documents"] == 0:
        raise CorpusError(f"{jsonl_path}: no documents found")
    write_docbin(docbin, output_path)
    if dev_output is not None:
        write_docbin(dev_docbin, Path(dev_output))
    labels = counts["labels"]
    synthetic = {"documents": notes["documents"], "words": counts["words"], "entities": sum(labels.values()),
                 "per_label": dict(labels.most_common())}
    # The labels of what sets doc.ents: the NER, or an ensemble of NERs (deid_ensemble_ner).
    known = sorted({label for name, pipe in nlp.pipeline if "doc.ents" in nlp.get_pipe_meta(name).assigns
                    for label in getattr(pipe, "labels", ())})
    return {
        "input": str(jsonl_path), "output": str(output_path),
        "dev_output": str(dev_output) if dev_output is not None else None,
        "dev_documents": len(dev_ids), "dev_chunks": len(dev_docbin), "seed": seed,
        "annotator": {"lang": nlp.lang, "name": nlp.meta.get("name"), "version": nlp.meta.get("version"),
                      "pipeline": list(nlp.pipe_names)},
        "gold_path": str(gold_path) if gold_path is not None else None,
        "max_words": max_words, "batch_size": batch_size, "n_process": n_process, "engine": engine,
        "documents": notes["documents"], "empty_documents": notes["empty_documents"],
        "chunks": counts["chunks"], "tokens": counts["tokens"], "words": counts["words"],
        "entities": synthetic["entities"], "seconds": round(seconds, 2),
        "words_per_second": round(counts["words"] / seconds) if seconds > 0 else None,
        "synthetic": synthetic, "gold": gold,
        "per_label": compare_labels(synthetic, gold, known),
        "llm": llm_report(nlp, notes["documents"]),
    }
