"""Benchmark: tokens per second of the production de-identification command, beside spaCy's
own speed figure for the NER alone, and the cost of the rules and of pseudonymization as a
share of the NER's time, in one run.

Why: the de-identification issue sets two targets, at least 10,000 tokens/s end to end and
pseudonymization under 10 % of the NER's time. The first only means something beside the
speed that `spacy evaluate` reports for the same model and text (the ceiling the NER sets);
the second needs the components timed apart from the NER on the same documents. Every speed
here counts spaCy tokens (len(doc)), as `spacy evaluate` does under the name "words/s"; the
project's "words" (clinical_deid.tokenizer.count_words) are fewer.

- End to end: `deidentify_main`, the function behind `python -m clinical_deid.deidentify`, on a
  temporary copy of the input (read, tokenize, NER, rules, pseudonymize, write the outputs and
  the spans JSONL), with 1 and 2 processes. The input is a folder of .txt notes (copied as a
  folder) or a JSONL file of `{id, text}` records, as `scripts.gold_texts` writes any corpus
  format's test part (copied as JSONL, the ids made unique per repeat). The figure is the command's own
  tokens/s (its timer starts before the first file is read and stops after the last is
  written; model loading is outside it, worker start-up inside it).
- NER alone: `Language.evaluate` on the examples of the gold DocBin, as `spacy evaluate`
  builds them (its `speed`: tokens / time of tokenizing + `nlp.pipe`, trained pipeline only).
- Components: the same texts tokenized, then `tok2vec` + `ner` through `nlp.pipe` (the
  production batch size), then `deid_rules` and `deid_transform` called on those docs; each
  timed on its own.

`--repeat N` repeats the text N times for a longer measurement; a warm-up on the first 20
documents comes before every measurement and is not counted. Only counts and timings are
printed, never text.

    python -m scripts.bench_deid training/meddocan/ner_cpu/model-best ../shared/data/meddocan/test \
        corpus/meddocan/test.spacy --repeat 4 --output metrics/meddocan/bench_deid.json
    python -m scripts.bench_deid training/demo-es/ner_cpu/model-best deidentified/demo-es/bench-deid/input.jsonl \
        corpus/demo-es/test.spacy --limit 10 --repeat 1
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.training import Corpus
from wasabi import msg

from clinical_deid.deidentify import deidentify_main, ensure_registered, prepare_pipeline, use_key
from clinical_deid.io import read_jsonl, write_jsonl

TARGET_TOKENS_PER_SECOND = 10_000
TARGET_PSEUDO_SHARE = 0.10
WARMUP_DOCS = 20
DEID_PIPES = ("deid_rules", "deid_transform")


def list_texts(folder: Path, limit: int = 0) -> List[Path]:
    """The .txt files under `folder`, sorted; the first `limit` only when it is not 0."""
    files = sorted(p for p in Path(folder).rglob("*.txt") if p.is_file())
    return files[:limit] if limit else files


def copy_texts(files: Sequence[Path], folder: Path, dest: Path, repeat: int = 1) -> Path:
    """`repeat` copies of `files` under dest/rep<i>/ (relative paths kept); returns dest."""
    for i in range(repeat):
        for path in files:
            target = dest / f"rep{i}" / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dest


def read_records(path: Path, limit: int = 0) -> List[Dict[str, Any]]:
    """The records of a JSONL file of notes (a string "text" each; DataError naming the file and
    line otherwise); the first `limit` only when it is not 0. A record without an id gets its line's."""
    records = []
    for where, _, record in read_jsonl(path):
        doc_id = record.get("id")
        records.append({**record, "id": str(doc_id) if doc_id is not None else where.rsplit(":", 1)[-1]})
        if limit and len(records) == limit:
            break
    return records


def copy_records(records: Sequence[Dict[str, Any]], dest: Path, repeat: int = 1) -> Path:
    """`repeat` copies of `records` as one JSONL file, ids made unique as rep<i>/<id>; returns dest."""
    return write_jsonl(({**r, "id": f"rep{i}/{r['id']}"} for i in range(repeat) for r in records), dest)


def read_input(path: Path, limit: int = 0) -> Tuple[List[str], List[str], List[Any]]:
    """(ids, texts, items) of the notes to bench: a folder's .txt files (items: their paths) or a
    JSONL file's records (items: the records); the first `limit` when it is not 0. ValueError
    when there are none."""
    path = Path(path)
    if path.is_dir():
        files = list_texts(path, limit)
        if not files:
            raise ValueError(f"{path}: no .txt files")
        # plain utf-8: keeps MEDDOCAN's BOMs
        return [p.stem for p in files], [p.read_bytes().decode("utf-8") for p in files], files
    records = read_records(path, limit)
    if not records:
        raise ValueError(f"{path}: no JSONL records of notes")
    return [r["id"] for r in records], [r["text"] for r in records], records


def copy_input(path: Path, items: Sequence[Any], dest: Path, repeat: int = 1) -> Path:
    """`repeat` copies of the items `read_input` gave, as the same kind of input: a folder or a .jsonl file."""
    if Path(path).is_dir():
        return copy_texts(items, Path(path), dest, repeat)
    return copy_records(items, dest.with_suffix(".jsonl"), repeat)


def same_outputs(a: Path, b: Path) -> bool:
    """Whether two output folders (or files) hold the same files with the same bytes."""
    if a.is_file() or b.is_file():
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def end_to_end(nlp: Language, input_dir: Path, work: Path, n_processes: Sequence[int], batch_size: int,
               warmup_dir: Path, engines: Sequence[str] = ("local",), model: Optional[str] = None,
               **keying: Any) -> Dict[str, Dict]:
    """The production command's tokens/s on `input_dir` (a folder or a .jsonl file) for each engine and
    number of processes ("1", "2": local; "ray-1", "ray-2": Ray actors, which load `model` by path).

    Each run's `seconds` is the command's own timer (first document read to last written);
    `wall_seconds` adds the pipeline's loading and, with Ray, starting the instance and its
    actors: `startup_seconds` is the difference. `per_core_efficiency`: tokens/s over N times
    the local one-process figure. `keying`: the key options of the Ray runs' actors.
    """
    suffix = "" if Path(input_dir).is_dir() else ".jsonl"  # a JSONL input's output is a JSONL file
    deidentify_main(nlp, warmup_dir, work / f"warmup{suffix}", spans_output=work / "warmup.spans.jsonl",
                    batch_size=batch_size, resume=False, silent=True)
    results: Dict[str, Dict] = {}
    for engine in engines:
        for n in n_processes:
            name = str(n) if engine == "local" else f"{engine}-{n}"
            extra = dict(engine=engine, **keying) if engine != "local" else {}
            start = time.perf_counter()
            summary = deidentify_main(model if engine != "local" else nlp, input_dir, work / f"out-{name}{suffix}",
                                      spans_output=work / f"spans-{name}.jsonl", batch_size=batch_size, n_process=n,
                                      resume=False, silent=True, **extra)
            wall = time.perf_counter() - start
            results[name] = {
                "engine": engine, "n_process": n, "documents": summary["documents"], "failed": summary["failed"],
                "tokens": summary["tokens"], "seconds": summary["seconds"], "wall_seconds": round(wall, 3),
                "startup_seconds": round(wall - summary["seconds"], 3),
                "tokens_per_second": summary["tokens_per_second"], "load_average": [round(x, 2) for x in os.getloadavg()],
            }
    first = next(iter(results))
    for name, figures in results.items():
        if name != first:
            figures["same_output_as_" + first] = same_outputs(work / f"out-{first}{suffix}", work / f"out-{name}{suffix}")
        if "1" in results and results["1"]["tokens_per_second"]:
            figures["per_core_efficiency"] = round(
                figures["tokens_per_second"] / (figures["n_process"] * results["1"]["tokens_per_second"]), 3)
    return results


def ner_alone(model: str, docbin: Path, repeat: int = 1, ids: Optional[set] = None) -> Dict:
    """`spacy evaluate`'s speed: Language.evaluate on the DocBin's examples, trained pipeline only
    (a packaged pipeline's de-identification components are left out)."""
    ensure_registered()
    nlp = spacy.load(model, exclude=list(DEID_PIPES))
    corpus = Corpus(docbin)

    def examples() -> list:  # read anew for each pass: every pass gets fresh, unprocessed Docs
        egs = list(corpus(nlp))
        chosen = [eg for eg in egs if ids is None or eg.reference.user_data.get("id") in ids]
        return chosen or egs[: len(ids or ())]  # a DocBin without ids: its first documents

    nlp.evaluate(examples()[:WARMUP_DOCS])
    dataset = [eg for _ in range(repeat) for eg in examples()]
    scores = nlp.evaluate(dataset)
    return {"pipeline": nlp.pipe_names, "documents": len(dataset), "tokens": sum(len(eg.predicted) for eg in dataset),
            "batch_size": nlp.batch_size, "tokens_per_second": round(scores["speed"]), "ents_f": scores.get("ents_f")}


def component_costs(nlp: Language, texts: Sequence[str], batch_size: int, profile: bool = False) -> Dict:
    """Seconds of the tokenizer, the model's components, deid_rules and deid_transform on the same docs."""
    model_pipes = [name for name in nlp.pipe_names if name not in DEID_PIPES]
    rules = nlp.get_pipe("deid_rules") if "deid_rules" in nlp.pipe_names else None
    transform = nlp.get_pipe("deid_transform")
    list(nlp.pipe(texts[:WARMUP_DOCS], batch_size=batch_size))  # warm-up (Faker's locale data too)

    start = time.perf_counter()
    docs = [nlp.make_doc(text) for text in texts]
    tokenizer_s = time.perf_counter() - start
    with nlp.select_pipes(enable=model_pipes):
        start = time.perf_counter()
        docs = list(nlp.pipe(docs, batch_size=batch_size))
        ner_s = time.perf_counter() - start
    rules_s = 0.0
    if rules is not None:
        start = time.perf_counter()
        docs = [rules(doc) for doc in docs]
        rules_s = time.perf_counter() - start
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    docs = [transform(doc) for doc in docs]
    if profiler:
        profiler.disable()
    transform_s = time.perf_counter() - start
    tokens = sum(len(doc) for doc in docs)
    result = {
        "documents": len(docs), "tokens": tokens, "model_pipes": model_pipes, "mode": transform.mode,
        "entities": sum(len(doc._.deid_spans) for doc in docs),
        "tokenizer_seconds": round(tokenizer_s, 3), "ner_seconds": round(ner_s, 3),
        "rules_seconds": round(rules_s, 3), "transform_seconds": round(transform_s, 3),
        "rules_share_of_ner": round(rules_s / ner_s, 4) if ner_s else None,
        "transform_share_of_ner": round(transform_s / ner_s, 4) if ner_s else None,
        "ner_tokens_per_second": round(tokens / ner_s) if ner_s else None,
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        result["profile"] = out.getvalue()
    return result


def bench(model: str, input_dir: Path, docbin: Path, repeat: int = 1, limit: int = 0, batch_size: int = 64,
          n_processes: Sequence[int] = (1, 2), mode: str = "pseudonymize", seed: int = 0,
          profile: bool = False, silent: bool = False, key: Optional[bytes] = None,
          insecure_demo_key: bool = False, engines: Sequence[str] = ("local",)) -> Dict:
    """Run the three measurements; return the figures, ratios and targets as one dict.
    `input_dir`: a folder of .txt notes or a JSONL file of {id, text} records.
    `key`: the secret surrogate key (pseudonymizing needs one unless `insecure_demo_key`).
    `engines`: "local" and / or "ray" (the end-to-end runs of each, with each of `n_processes`)."""
    load_before = os.getloadavg()
    doc_ids, texts, items = read_input(input_dir, limit)
    ids = set(doc_ids)
    ensure_registered()
    nlp = spacy.load(model)
    prepare_pipeline(nlp, mode=mode, seed=seed)
    use_key(nlp, key, insecure_demo_key)  # keyed draws are what production pays for
    with tempfile.TemporaryDirectory(prefix="bench_deid-") as tmp:
        work = Path(tmp)
        data = copy_input(input_dir, items, work / "in", repeat)
        warmup = copy_input(input_dir, items[:WARMUP_DOCS], work / "warmup-in")
        if not silent:
            msg.info(f"End to end: {len(items) * repeat:,} documents, processes {list(n_processes)}, {list(engines)}")
        e2e = end_to_end(nlp, data, work, n_processes, batch_size, warmup, engines, model, key=key,
                         insecure_demo_key=insecure_demo_key, mode=mode, seed=seed)
    if not silent:
        msg.info("NER alone (Language.evaluate, as spacy evaluate)")
    ner = ner_alone(model, docbin, repeat, ids if limit else None)
    if not silent:
        msg.info("Components on the same docs")
    costs = component_costs(nlp, texts * repeat, batch_size, profile=profile)
    ner_speed = ner["tokens_per_second"]
    best = max(r["tokens_per_second"] for r in e2e.values())
    ratios = {f"end_to_end_{n.replace('-', '')}proc_over_ner": round(r["tokens_per_second"] / ner_speed, 3) if ner_speed else None
              for n, r in e2e.items()}
    if "1" in e2e and e2e["1"]["tokens_per_second"]:
        for name in [n for n in ("2", "ray-1", "ray-2") if n in e2e]:
            ratios[f"end_to_end_{name.replace('-', '')}{'' if '-' in name else 'proc'}_over_1proc"] = round(
                e2e[name]["tokens_per_second"] / e2e["1"]["tokens_per_second"], 3)
    ratios["rules_share_of_ner"] = costs["rules_share_of_ner"]
    ratios["pseudonymization_share_of_ner"] = costs["transform_share_of_ner"]
    return {
        "model": str(model), "input": str(input_dir), "docbin": str(docbin), "repeat": repeat, "limit": limit,
        "source_documents": len(items), "batch_size": batch_size, "mode": mode, "seed": seed,
        "keyed": key is not None, "cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "end_to_end": e2e, "ner_alone": ner, "components": {k: v for k, v in costs.items() if k != "profile"},
        "ratios": ratios,
        "targets": {
            "end_to_end_tokens_per_second": TARGET_TOKENS_PER_SECOND, "end_to_end_met": best >= TARGET_TOKENS_PER_SECOND,
            "pseudonymization_share_of_ner": TARGET_PSEUDO_SHARE,
            "pseudonymization_met": (costs["transform_share_of_ner"] or 0) < TARGET_PSEUDO_SHARE,
        },
        **({"profile": costs["profile"]} if profile else {}),
    }


def table(result: Dict) -> List[tuple]:
    """The figures as (measure, value, target, met) rows for the printed table (speeds in tokens/s)."""

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    rows = []
    for n, r in result["end_to_end"].items():
        rows.append((f"end to end, {r['engine']} {r['n_process']} proc (tokens/s)", f"{r['tokens_per_second']:,}",
                     f"≥ {TARGET_TOKENS_PER_SECOND:,}", mark(r["tokens_per_second"] >= TARGET_TOKENS_PER_SECOND)))
    rows.append(("NER alone, spacy evaluate (tokens/s)", f"{result['ner_alone']['tokens_per_second']:,}", "", ""))
    costs = result["components"]
    rows.append(("NER on the same docs (tokens/s)", f"{costs['ner_tokens_per_second']:,}", "", ""))
    rows.append(("rules / NER time", f"{costs['rules_share_of_ner']:.1%}", "", ""))
    rows.append(("pseudonymization / NER time", f"{costs['transform_share_of_ner']:.1%}",
                 f"< {TARGET_PSEUDO_SHARE:.0%}", mark(costs["transform_share_of_ner"] < TARGET_PSEUDO_SHARE)))
    for key, value in result["ratios"].items():
        if key.startswith("end_to_end") and value is not None:
            rows.append((key.replace("_", " "), f"{value:.2f}", "", ""))
    return rows
