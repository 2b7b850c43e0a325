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

    python -m deid_synthesis.annotate MODEL synthetic.jsonl corpus/x/synthetic/train.spacy \\
        --dev-output corpus/x/synthetic/dev.spacy --gold corpus/x/train.spacy \\
        --report corpus/x/synthetic/annotate.json --code src/clinical_deid/tokenizer.py
"""
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, Optional, Tuple

import srsly
import typer
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from tqdm import tqdm
from wasabi import msg

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.cli_util import load_pipeline
from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.docs import split_doc

UNDER_PRODUCED = 0.5  # a label below this ratio of gold's rate is flagged in the printout


def read_synthetic(path: Path) -> Iterator[Tuple[str, dict]]:
    """Yield ("file:line", record) for each line of the generator's JSONL.

    A record needs a string "text"; "id" defaults to "<file stem>-<line>". Anything
    malformed stops with the file and line.
    """
    for where, _, record in read_synthetic_lines(path):
        yield where, record


def read_synthetic_lines(path: Path) -> Iterator[Tuple[str, str, dict]]:
    """As `read_synthetic`, with each raw line too (to copy lines unchanged)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file (expected the generator's JSONL)")
    with path.open(encoding="utf8") as lines:
        for lineno, line in enumerate(lines, start=1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{where}: invalid JSON ({err.msg}, column {err.colno})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CorpusError(f"{where}: no string field 'text'")
            record["id"] = str(record.get("id", f"{path.stem}-{lineno}"))
            yield where, line, record


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
    """Documents, words and entities per label of a set of Docs."""
    n_docs = n_words = 0
    labels: Counter = Counter()
    for doc in docs:
        n_docs += 1
        n_words += count_words(doc)
        labels.update(ent.label_ for ent in doc.ents)
    return {"documents": n_docs, "words": n_words, "entities": sum(labels.values()),
            "per_label": dict(labels.most_common())}


def per_1k(count: int, words: int) -> float:
    return 1000 * count / words if words else 0.0


def compare_labels(synthetic: Dict, gold: Optional[Dict], labels: Iterable[str] = ()) -> Dict[str, Dict]:
    """Per label: count and rate per 1,000 words in each corpus, and the ratio of the rates.

    ratio = synthetic rate / gold rate (None without gold, or when gold has no such entity).
    Labels the annotator knows but never predicted appear with 0.
    """
    names = set(labels) | set(synthetic["per_label"]) | set(gold["per_label"] if gold else ())
    rows = {}
    for label in names:
        s = synthetic["per_label"].get(label, 0)
        row = {"synthetic": s, "synthetic_per_1k": per_1k(s, synthetic["words"])}
        if gold is not None:
            g = gold["per_label"].get(label, 0)
            row.update(gold=g, gold_per_1k=per_1k(g, gold["words"]))
            row["ratio"] = row["synthetic_per_1k"] / row["gold_per_1k"] if g else None
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


def write_docbin(docbin: DocBin, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp")
    docbin.to_disk(tmp_path)
    tmp_path.replace(path)


def annotate(
    nlp: Language,
    jsonl_path: Path,
    output_path: Path,
    max_words: int = 128,
    batch_size: int = 64,
    n_process: int = 1,
    gold_path: Optional[Path] = None,
    dev_output: Optional[Path] = None,
    dev_share: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> Dict:
    """Label the synthetic notes in chunks and write them as a DocBin; return the report.

    With `dev_output`, a seeded `dev_share` of the notes (all chunks of a note together) go
    there instead: the synthetic model's dev set, since the real data is not at hand.
    DocBins are written to a temporary name and renamed at the end, so an error never
    leaves a half-written corpus behind.
    """
    if max_words < 1:
        raise CorpusError(f"--max-words must be at least 1, not {max_words}")
    jsonl_path, output_path = Path(jsonl_path), Path(output_path)
    dev_ids = held_out_ids(jsonl_path, dev_share, seed) if dev_output is not None else set()
    gold = None
    if gold_path is not None:
        if not Path(gold_path).is_file():
            raise CorpusError(f"{gold_path}: no such file (expected the gold DocBin)")
        gold = corpus_stats(DocBin().from_disk(gold_path).get_docs(nlp.vocab))
    counts: Counter = Counter()
    chunks = synthetic_chunks(nlp, read_synthetic(jsonl_path), max_words, counts)
    docbin, dev_docbin = DocBin(store_user_data=True), DocBin(store_user_data=True)
    labels: Counter = Counter()
    n_chunks = n_words = n_tokens = 0
    start = time.perf_counter()
    annotated = nlp.pipe(chunks, as_tuples=True, batch_size=batch_size, n_process=n_process)
    for doc, context in tqdm(annotated, desc="chunks", unit=" chunks", disable=not progress):
        # Only the provenance goes into the corpus: pipeline extension data stored in
        # user_data (e.g. a transformer's output) would bloat the DocBin.
        doc.user_data.clear()
        doc.user_data.update(context)
        n_chunks += 1
        n_tokens += len(doc)
        n_words += count_words(doc)
        labels.update(ent.label_ for ent in doc.ents)
        (dev_docbin if context["source_id"] in dev_ids else docbin).add(doc)
    seconds = time.perf_counter() - start
    if counts["documents"] == 0:
        raise CorpusError(f"{jsonl_path}: no documents found")
    write_docbin(docbin, output_path)
    if dev_output is not None:
        write_docbin(dev_docbin, Path(dev_output))
    synthetic = {"documents": counts["documents"], "words": n_words, "entities": sum(labels.values()),
                 "per_label": dict(labels.most_common())}
    known = nlp.get_pipe("ner").labels if "ner" in nlp.pipe_names else ()
    return {
        "input": str(jsonl_path),
        "output": str(output_path),
        "dev_output": str(dev_output) if dev_output is not None else None,
        "dev_documents": len(dev_ids),
        "dev_chunks": len(dev_docbin),
        "seed": seed,
        "annotator": {"lang": nlp.lang, "name": nlp.meta.get("name"), "version": nlp.meta.get("version"),
                      "pipeline": list(nlp.pipe_names)},
        "gold_path": str(gold_path) if gold_path is not None else None,
        "max_words": max_words,
        "batch_size": batch_size,
        "n_process": n_process,
        "documents": counts["documents"],
        "empty_documents": counts["empty_documents"],
        "chunks": n_chunks,
        "tokens": n_tokens,
        "words": n_words,
        "entities": synthetic["entities"],
        "seconds": round(seconds, 2),
        "words_per_second": round(n_words / seconds) if seconds > 0 else None,
        "synthetic": synthetic,
        "gold": gold,
        "per_label": compare_labels(synthetic, gold, known),
    }


def _num(x: Optional[float], fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_report(report: Dict) -> None:
    gold = report["gold"]
    msg.divider(f"Machine annotation of {report['input']}")
    msg.info(f"{report['documents']:,} notes ({report['empty_documents']:,} empty, skipped) → "
             f"{report['chunks']:,} chunks of ≤ {report['max_words']} words, {report['words']:,} words, "
             f"{report['entities']:,} entities, {report['seconds']:.1f} s")
    if gold is not None:
        msg.info(f"Gold {report['gold_path']}: {gold['documents']:,} docs, {gold['words']:,} words, "
                 f"{gold['entities']:,} entities")
    header = ["label", "synthetic", "per 1k words"]
    if gold is not None:
        header += ["gold", "per 1k words", "ratio"]
    rows = []
    for label, row in report["per_label"].items():
        cells = [label, f"{row['synthetic']:,}", _num(row["synthetic_per_1k"])]
        if gold is not None:
            cells += [f"{row['gold']:,}", _num(row["gold_per_1k"]), _num(row["ratio"])]
        rows.append(cells)
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * (len(header) - 1))
    low = [label for label, row in report["per_label"].items()
           if row.get("ratio") is not None and row["ratio"] < UNDER_PRODUCED]
    if low:
        msg.warn(f"Under-produced (rate below {UNDER_PRODUCED:.0%} of gold's): {', '.join(low)}")
    if report["dev_output"]:
        msg.good(f"Wrote {report['chunks'] - report['dev_chunks']:,} annotated chunks → {report['output']}, "
                 f"{report['dev_chunks']:,} of {report['dev_documents']:,} held-out notes → {report['dev_output']}")
    else:
        msg.good(f"Wrote {report['chunks']:,} annotated chunks → {report['output']}")


def main(
    model: str = typer.Argument(..., help="Annotator pipeline: a path or an installed package name"),
    jsonl_path: Path = typer.Argument(..., help="Synthetic notes (JSONL with 'text', 'id' and provenance)"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (DocBin, one chunk per Doc)"),
    gold_path: Optional[Path] = typer.Option(None, "--gold", help="Gold DocBin to compare entities per label with"),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the report as JSON here"),
    dev_output: Optional[Path] = typer.Option(None, "--dev-output", help="Hold out notes for the synthetic model's dev set into this DocBin"),
    dev_share: float = typer.Option(0.1, "--dev-share", help="Share of the notes held out (with --dev-output)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev hold-out"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk (the paper: 128)"),
    n_process: int = typer.Option(1, "--n-process", help="Processes for nlp.pipe (CPU pipelines)"),
    batch_size: int = typer.Option(64, "--batch-size", help="Chunks per nlp.pipe batch"),
    code: Optional[Path] = typer.Option(None, "--code", "-c", help="Python file with registered functions the pipeline needs"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
):
    """Label synthetic notes with an annotator pipeline, in chunks, into a DocBin with provenance."""
    nlp = load_pipeline(model, code, gpu_id)
    try:
        report = annotate(nlp, jsonl_path, output_path, max_words, batch_size, n_process, gold_path,
                          dev_output, dev_share, seed, progress=True)
    except CorpusError as err:
        msg.fail(str(err), exits=1)
    report["model"] = str(model)
    print_report(report)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(report_path, report)
        msg.good(f"Saved report → {report_path}")


if __name__ == "__main__":
    typer.run(main)
