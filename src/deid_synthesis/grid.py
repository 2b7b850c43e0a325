"""The paper's ablations as one grid: adaptation share, annotator share, synthetic volume,
generator model, generation vocabulary, repeated seeds.

Why a grid command rather than `spacy project run` in a loop: weasel re-runs a command when
its vars change, and every cell of an ablation changes them, so a loop would retrain the
adapter of a fraction for every volume and regenerate every corpus for every model. Here
each step's output lives in a folder named by a short hash of exactly the settings that
determine it (input files by content, upstream steps by their own key):

    OUTPUT/subsets/<key>/train.spacy      the gold documents of a share (data seed 0)
    OUTPUT/adapters/<key>/                deid_synthesis.adapt on them (fraction 0: no adapter)
    OUTPUT/synthetic/<key>/samples.jsonl  deid_synthesis.generate (resumes after an interruption)
    OUTPUT/privacy/<key>/                 deid_synthesis.privacy's 5-gram recall, copy rate and PHI
                                          strings reproduced, against the adaptation notes
    OUTPUT/annotators/<key>/model-best    an annotator trained on a share of the gold notes
                                          (the config's seed, gold dev for selection)
    OUTPUT/corpus/<key>/{train,dev}.spacy deid_synthesis.annotate (held-out synthetic dev)
    OUTPUT/models/<key>/model-best        deid_synthesis.train, as a subprocess like project.yml
    OUTPUT/metrics/<key>/scores.json      deid_synthesis.evaluate on the real test split

Each folder holds settings.json (what made it) and result.json (written last: the step is
done); a step whose result exists with the same settings is skipped. Re-running the grid, or
adding a seed or a volume, runs only what is new. The key covers settings and input
contents, not the code: after changing a step's code, delete its folders.

Seeds, as in the paper: the documents of a share are always chosen with data seed 0 (a
smaller share is a subset of a larger one, and the adapter and an annotator of the same
share see the same notes), so shares are comparable across seeds. The repeated `--seeds`
change the LoRA initialisation and batch order, the generation sampling, the synthetic
dev hold-out and the synthetic model's training (spaCy's `--system.seed`). So the adapter
is trained on the share's subset DocBin (its manifest says fraction 1.0 of that file; the
grid's settings.json says which share it is). Fraction 0 has no adapter, so its "adapter"
is shared by all seeds; the gold annotator (share 1.0, trained by the `train` command) is
shared by all cells.

OUTPUT/results.csv and results.json hold one row per cell (settings, scores on the real
test split, ratios to the gold model, privacy figures, step wall times: the time the
artefact took when it was made, so cells sharing one report the same); OUTPUT/summary.md
is a table in the shape of the paper's (mean ± standard deviation over seeds) and
OUTPUT/grid.png plots F1 against the adaptation share. Generated text is never printed.

    python -m deid_synthesis.grid meddocan --lang es --fractions 0.05,0.25,0.95 --volumes 0.1 --seeds 0,1,2
"""
import csv
import hashlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import spacy
import srsly
import torch
import typer
from spacy.tokens import DocBin
from wasabi import msg

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from deid_synthesis.adapt import AdaptError, adapt, documents_hash, select_documents
from deid_synthesis.annotate import annotate, read_synthetic, write_docbin
from deid_synthesis.cli_util import load_pipeline
from deid_synthesis.causal_lm import DEFAULT_BASE
from deid_synthesis.corpus_readers import CorpusError
from deid_synthesis.evaluate import evaluate
from deid_synthesis.generate import GenerateError, generate
from deid_synthesis.privacy import PhiIndex, ngram_recall, phi_reproduction, read_gold

ROOT = Path(__file__).resolve().parents[2]  # the project folder (src/deid_synthesis/ is two below)
DATA_SEED = 0  # chooses the documents of a share, the same for every repeated seed
FACTORS = ("base_model", "gen_vocabulary", "annotator_fraction", "fraction", "volume")  # seed is the repeat


class GridError(ValueError):
    pass


def parse_list(text: str, cast: Callable, name: str) -> list:
    """"0.05,0.25" -> [0.05, 0.25] (duplicates dropped, order kept); a clear error otherwise."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = cast(item)
        except ValueError:
            raise GridError(f"--{name}: '{item}' is not a valid value (expected a comma-separated list)") from None
        if value not in values:
            values.append(value)
    if not values:
        raise GridError(f"--{name}: no values")
    return values


def make_grid(**options) -> Dict:
    """Check every setting before anything runs; returns the grid's options with lists parsed."""
    grid = dict(options)
    for name, cast in (("fractions", float), ("volumes", float), ("seeds", int), ("annotator_fractions", float),
                       ("base_models", str), ("gen_vocabularies", str)):
        if isinstance(grid[name], str):
            grid[name] = parse_list(grid[name], cast, name.replace("_", "-"))
        grid[name] = [cast(v) for v in grid[name]]
    problems = [f"fraction {f} is outside [0, 1]" for f in grid["fractions"] if not 0 <= f <= 1]
    problems += [f"annotator fraction {f} is outside (0, 1]" for f in grid["annotator_fractions"] if not 0 < f <= 1]
    problems += [f"volume {v} is not positive" for v in grid["volumes"] if not v > 0 or math.isinf(v)]
    problems += [f"generation vocabulary '{v}': use full or corpus" for v in grid["gen_vocabularies"]
                 if v not in ("full", "corpus")]
    if grid["adapt_precision"] not in ("fp32", "bf16"):
        problems.append(f"adapter precision '{grid['adapt_precision']}': use fp32 or bf16")
    if grid["train_steps"] < 1 or grid["max_new_tokens"] < 1:
        problems.append("--train-steps and --max-new-tokens must be at least 1")
    needed = {"train": grid["train"], "dev": grid["dev"], "test": grid["test"], "config": grid["config"],
              "generation config": grid["generate_config"]}
    if 1.0 in grid["annotator_fractions"]:
        needed["gold annotator (run the train command, or pass --gold-model)"] = Path(grid["gold_model"]) / "meta.json"
    problems += [f"{what}: {path} not found" for what, path in needed.items() if not Path(path).exists()]
    if problems:
        raise GridError("grid settings refused, nothing was run:\n" + "\n".join(f"- {p}" for p in problems))
    return grid


def cells(grid: Dict) -> List[Dict]:
    axes = [grid["base_models"], grid["gen_vocabularies"], grid["annotator_fractions"], grid["fractions"],
            grid["volumes"], grid["seeds"]]
    return [dict(zip(FACTORS + ("seed",), values)) for values in itertools.product(*axes)]


# ---------------------------------------------------------------------------
# The cache: one folder per step and settings
# ---------------------------------------------------------------------------


def short_hash(settings: Dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf8")).hexdigest()[:12]


class Cache:
    """Runs a step unless its result exists with the same settings; logs what it did."""

    def __init__(self, root: Path, silent: bool = False):
        self.root, self.silent = Path(root), silent
        self.log: List[Dict] = []
        self._fingerprints: Dict[str, str] = {}

    def fingerprint(self, path: Path) -> str:
        """sha256 of a file's content, or of a folder's relative paths and contents."""
        path = Path(path)
        if str(path) not in self._fingerprints:
            digest = hashlib.sha256()
            for file in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
                digest.update(str(file.relative_to(path) if file != path else "").encode("utf8"))
                with file.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            self._fingerprints[str(path)] = "sha256:" + digest.hexdigest()[:16]
        return self._fingerprints[str(path)]

    def run(self, step: str, settings: Dict, fn: Callable[[Path], Dict], what: str = "") -> Dict:
        """fn(folder) does the work into the folder and returns the figures to keep.

        Returns result.json ({"key", "folder", "seconds", **figures})."""
        # As settings.json will read back (srsly keeps 9 decimals of a float).
        settings = srsly.json_loads(srsly.json_dumps({"step": step, **settings}))
        key = short_hash(settings)
        folder = self.root / step / key
        done, written = folder / "result.json", folder / "settings.json"
        entry = {"step": step, "key": key, "what": what}
        stored = srsly.read_json(written) if written.exists() else None
        if done.exists() and stored == settings:
            self.log.append({**entry, "action": "skipped"})
            if not self.silent:
                msg.text(f"  {step} {what}: done with the same settings, skipped → {folder}")
            return srsly.read_json(done)
        if stored is not None and stored != settings:
            raise GridError(f"{folder}: holds other settings than its key says; delete the folder")
        folder.mkdir(parents=True, exist_ok=True)
        srsly.write_json(written, settings)
        if not self.silent:
            msg.info(f"  {step} {what}: running → {folder}")
        start = time.perf_counter()
        figures = fn(folder)
        result = {"key": key, "folder": str(folder), "seconds": round(time.perf_counter() - start, 1), **figures}
        srsly.write_json(done, result)
        self.log.append({**entry, "action": "ran"})
        return srsly.read_json(done)  # as a later run will read it (srsly rounds floats)


# ---------------------------------------------------------------------------
# Steps: each reuses the project's own function
# ---------------------------------------------------------------------------


def subset_step(cache: Cache, grid: Dict, fraction: float) -> Dict:
    """The gold training documents of a share, chosen with the data seed, as a DocBin."""
    def run(folder: Path) -> Dict:
        docs = list(DocBin(store_user_data=True).from_disk(grid["train"]).get_docs(spacy.blank("xx").vocab))
        chosen = select_documents(len(docs), fraction, DATA_SEED)
        write_docbin(DocBin(store_user_data=True, docs=[docs[i] for i in chosen]), folder / "train.spacy")
        ids = [str(docs[i].user_data.get("id", i)) for i in chosen]
        return {"path": str(folder / "train.spacy"), "documents": len(chosen), "of": len(docs),
                "documents_hash": documents_hash(ids)}

    settings = {"train": cache.fingerprint(grid["train"]), "fraction": fraction, "data_seed": DATA_SEED}
    return cache.run("subsets", settings, run, f"{fraction:g} of the gold notes")


def adapter_step(cache: Cache, grid: Dict, cell: Dict) -> Dict:
    """deid_synthesis.adapt on the share's documents (chosen with the data seed), trained with the cell's seed."""
    fraction, base = cell["fraction"], cell["base_model"]

    def run(train: Path, share: float, seed: int) -> Callable[[Path], Dict]:
        def fn(folder: Path) -> Dict:
            manifest = adapt(train, folder, base_model=base, fraction=share, seed=seed, rank=grid["lora_rank"],
                             alpha=grid["lora_alpha"], epochs=grid["adapt_epochs"], max_steps=grid["adapt_max_steps"],
                             seq_len=grid["adapt_seq_len"], batch_size=grid["adapt_batch_size"],
                             vocabulary=cell["gen_vocabulary"], bf16=grid["adapt_precision"] == "bf16",
                             threads=grid["threads"], silent=grid["silent"])
            curve = manifest["loss_curve"]
            return {"path": str(folder), "documents": manifest["n_documents"], "steps": manifest.get("steps", 0),
                    "loss": [curve[0][1], curve[-1][1]] if curve else None}
        return fn

    settings = {"train": cache.fingerprint(grid["train"]), "base_model": base, "fraction": fraction}
    if fraction == 0:  # no adaptation: nothing is trained, so no seed or hyper-parameter matters
        return cache.run("adapters", settings, run(grid["train"], 0.0, DATA_SEED),
                         f"fraction 0 ({base}, no adaptation)")
    subset = subset_step(cache, grid, fraction)
    settings.update({"subset": subset["key"], "seed": cell["seed"], "vocabulary": cell["gen_vocabulary"],
                     "device": "cuda" if torch.cuda.is_available() else "cpu",
                     **{k: grid[k] for k in ("adapt_epochs", "adapt_max_steps", "adapt_seq_len", "adapt_batch_size",
                                             "adapt_precision", "lora_rank", "lora_alpha")}})
    # All of the subset (fraction 1.0 of it): the seed then only drives the LoRA init and batch order.
    return cache.run("adapters", settings, run(Path(subset["path"]), 1.0, cell["seed"]),
                     f"fraction {fraction:g}, seed {cell['seed']} ({base})")


def generate_step(cache: Cache, grid: Dict, cell: Dict, adapter: Dict) -> Dict:
    device = f"cuda:{grid['gpu_id']}" if grid["gpu_id"] >= 0 else "cpu"
    settings = {"adapter": adapter["key"], "base_model": cell["base_model"], "dev": cache.fingerprint(grid["dev"]),
                "train": cache.fingerprint(grid["train"]), "config": cache.fingerprint(grid["generate_config"]),
                "volume": cell["volume"], "max_new_tokens": grid["max_new_tokens"],
                "vocabulary": cell["gen_vocabulary"], "seed": cell["seed"], "device": device,
                "lang": grid["lang"], "prompts": "surrogates"}  # prompts carry no real PHI (generate)

    def run(folder: Path) -> Dict:
        overrides = {"paths.adapter": adapter["path"], "components.llm.model.base_model": cell["base_model"],
                     "components.llm.model.max_new_tokens": grid["max_new_tokens"], "system.seed": cell["seed"],
                     "components.llm.model.device": device, "components.llm.model.threads": grid["threads"]}
        # Resumes on its own from what an interrupted run left in the folder.
        report = generate(grid["generate_config"], grid["dev"], grid["train"], folder, volume=cell["volume"],
                          overrides=overrides, vocabulary=cell["gen_vocabulary"], silent=grid["silent"],
                          lang=grid["lang"])
        if not report["complete"]:
            msg.warn(f"{folder}: generation did not reach its target")
        return {"samples": str(folder / "samples.jsonl"), "kept": report["kept"], "words": report["words"],
                "volume_reached": report["volume_reached"], "complete": report["complete"],
                "generate_seconds": round(sum(s["seconds"] for s in report["sessions"]), 1)}

    return cache.run("synthetic", settings, run, f"volume {cell['volume']:g}, seed {cell['seed']}")


def privacy_step(cache: Cache, grid: Dict, cell: Dict, synthetic: Dict) -> Dict:
    """The paper's 5-gram recall against the adaptation notes (all gold notes for fraction 0)."""
    settings = {"synthetic": synthetic["key"], "train": cache.fingerprint(grid["train"]),
                "fraction": cell["fraction"], "data_seed": DATA_SEED, "n": 5, "min_chars": 3, "max_gold_docs": 1}

    def run(folder: Path) -> Dict:
        all_docs = read_gold(grid["train"])
        chosen = select_documents(len(all_docs), cell["fraction"], DATA_SEED) or range(len(all_docs))
        real = [all_docs[i] for i in chosen]
        synth = [record["text"] for _, record in read_synthetic(Path(synthetic["samples"]))]
        ngram = ngram_recall([d.text for d in real], synth, 5)
        phi = phi_reproduction(real, synth, index=PhiIndex(real, 3, 1, frequency_docs=all_docs))["total"]
        return {"ngram_recall": ngram["recall"], "copy_rate": ngram["copy_rate"], "real_documents": len(real),
                "phi_reproduced": phi["reproduced"], "identifying_phi_strings": phi["identifying_strings"],
                "identifying_phi_reproduced": phi["identifying_reproduced"]}

    return cache.run("privacy", settings, run, f"fraction {cell['fraction']:g}, seed {cell['seed']}")


def train_spacy(grid: Dict, output: Path, train: Path, dev: Path, steps: int, seed: Optional[int]) -> None:
    """deid_synthesis.train in a subprocess, with the overrides project.yml passes."""
    encoder = grid["transformer_model"]
    encoder = str(Path(encoder).resolve()) if Path(encoder).exists() else encoder  # the subprocess runs in ROOT
    cmd = [sys.executable, "-m", "deid_synthesis.train", str(Path(grid["config"]).resolve()), "--output",
           str(Path(output).resolve()), "--gpu-id", str(grid["gpu_id"]), "--paths.train", str(Path(train).resolve()),
           "--paths.dev", str(Path(dev).resolve()), "--paths.transformer", encoder,
           "--nlp.lang", grid["lang"]]
    cmd += ["--training.max_steps", str(steps)] if steps else []
    cmd += ["--system.seed", str(seed)] if seed is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=grid["silent"], text=True)
    if done.returncode != 0:
        raise GridError(f"training into {output} failed (exit {done.returncode})"
                        + (f":\n{done.stderr[-2000:]}" if done.stderr else ""))


def scores_of(model: Path, test: Path) -> Dict:
    nlp = spacy.load(model)
    scores = evaluate(nlp, test)
    return {"strict": {k: scores["ents_strict"][k] for k in "prf"}, "token": {k: scores["token"][k] for k in "prf"},
            "scores": scores}


def annotator_step(cache: Cache, grid: Dict, cell: Dict) -> Dict:
    """The gold annotator (share 1.0), or one trained on a share of the gold notes, scored on test."""
    share = cell["annotator_fraction"]
    if share == 1.0:
        return {"key": "gold:" + cache.fingerprint(grid["gold_model"]), "path": str(grid["gold_model"]),
                "seconds": None, **grid["gold_scores"]}
    subset = subset_step(cache, grid, share)
    settings = {"subset": subset["key"], "dev": cache.fingerprint(grid["dev"]),
                "test": cache.fingerprint(grid["test"]), "config": cache.fingerprint(grid["config"]),
                "lang": grid["lang"], "steps": grid["annotator_steps"], "transformer": grid["transformer_model"],
                "device": "gpu" if grid["gpu_id"] >= 0 else "cpu"}

    def run(folder: Path) -> Dict:
        train_spacy(grid, folder, Path(subset["path"]), grid["dev"], grid["annotator_steps"], None)
        scores = scores_of(folder / "model-best", grid["test"])
        srsly.write_json(folder / "scores.json", scores.pop("scores"))
        return {"path": str(folder / "model-best"), "strict_f1": scores["strict"]["f"],
                "token_f1": scores["token"]["f"]}

    return cache.run("annotators", settings, run, f"share {share:g} of the gold notes")


def annotate_step(cache: Cache, grid: Dict, cell: Dict, synthetic: Dict, annotator: Dict) -> Dict:
    settings = {"synthetic": synthetic["key"], "annotator": annotator["key"], "gold": cache.fingerprint(grid["train"]),
                "max_words": grid["max_words"], "dev_share": 0.1, "seed": cell["seed"],
                "device": "gpu" if grid["gpu_id"] >= 0 else "cpu"}

    def run(folder: Path) -> Dict:
        report = annotate(load_pipeline(annotator["path"], gpu_id=grid["gpu_id"]), Path(synthetic["samples"]), folder / "train.spacy",
                          max_words=grid["max_words"], n_process=grid["n_process"], gold_path=grid["train"],
                          dev_output=folder / "dev.spacy", dev_share=0.1, seed=cell["seed"])
        srsly.write_json(folder / "annotate.json", report)
        return {"train": str(folder / "train.spacy"), "dev": str(folder / "dev.spacy"), "chunks": report["chunks"],
                "words": report["words"], "entities": report["entities"]}

    share = cell["annotator_fraction"]
    annotator_name = "gold" if share == 1.0 else f"share {share:g}"
    return cache.run("corpus", settings, run, f"seed {cell['seed']}, annotator {annotator_name}")


def model_step(cache: Cache, grid: Dict, cell: Dict, corpus: Dict) -> Dict:
    settings = {"corpus": corpus["key"], "config": cache.fingerprint(grid["config"]), "lang": grid["lang"],
                "steps": grid["train_steps"], "seed": cell["seed"], "transformer": grid["transformer_model"],
                "device": "gpu" if grid["gpu_id"] >= 0 else "cpu"}

    def run(folder: Path) -> Dict:
        train_spacy(grid, folder, Path(corpus["train"]), Path(corpus["dev"]), grid["train_steps"], cell["seed"])
        return {"path": str(folder / "model-best"),
                "train_seconds": srsly.read_json(folder / "train_time.json")["seconds"]}

    return cache.run("models", settings, run, f"{grid['train_steps']} steps, seed {cell['seed']}")


def metrics_step(cache: Cache, grid: Dict, model: Dict) -> Dict:
    settings = {"model": model["key"], "test": cache.fingerprint(grid["test"])}

    def run(folder: Path) -> Dict:
        scores = scores_of(Path(model["path"]), grid["test"])
        srsly.write_json(folder / "scores.json", scores.pop("scores"))
        return scores

    return cache.run("metrics", settings, run, "on the real test split")


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------


def gold_scores(path: Optional[Path]) -> Dict:
    if path is None or not Path(path).exists():
        return {"strict_f1": None, "token_f1": None}
    scores = srsly.read_json(path)
    return {"strict_f1": scores["ents_strict"]["f"], "token_f1": scores["token"]["f"]}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 4) if a is not None and b else None


def run_cell(cache: Cache, grid: Dict, cell: Dict) -> Dict:
    adapter = adapter_step(cache, grid, cell)
    synthetic = generate_step(cache, grid, cell, adapter)
    privacy = privacy_step(cache, grid, cell, synthetic)
    annotator = annotator_step(cache, grid, cell)
    corpus = annotate_step(cache, grid, cell, synthetic, annotator)
    model = model_step(cache, grid, cell, corpus)
    metrics = metrics_step(cache, grid, model)
    gold = grid["gold_scores"]
    return {
        "dataset": grid["dataset"], **cell, "config": Path(grid["config"]).stem, "train_steps": grid["train_steps"],
        "max_new_tokens": grid["max_new_tokens"],
        "strict_p": metrics["strict"]["p"], "strict_r": metrics["strict"]["r"], "strict_f1": metrics["strict"]["f"],
        "token_f1": metrics["token"]["f"], "gold_strict_f1": gold["strict_f1"], "gold_token_f1": gold["token_f1"],
        "ratio_strict_f1": ratio(metrics["strict"]["f"], gold["strict_f1"]),
        "ratio_token_f1": ratio(metrics["token"]["f"], gold["token_f1"]),
        "annotator_strict_f1": annotator["strict_f1"], "annotator_token_f1": annotator["token_f1"],
        "synthetic_notes": synthetic["kept"], "synthetic_words": synthetic["words"],
        "volume_reached": synthetic["volume_reached"], "synthetic_entities": corpus["entities"],
        "ngram_recall_5": privacy["ngram_recall"], "copy_rate": privacy["copy_rate"],
        "identifying_phi_reproduced": privacy["identifying_phi_reproduced"],
        "identifying_phi_strings": privacy["identifying_phi_strings"],
        "seconds_adapt": adapter["seconds"], "seconds_generate": synthetic["generate_seconds"],
        "seconds_annotator": annotator["seconds"], "seconds_annotate": corpus["seconds"],
        "seconds_train": model["train_seconds"], "seconds_evaluate": metrics["seconds"],
        "adapter_key": adapter["key"], "synthetic_key": synthetic["key"], "annotator_key": annotator["key"],
        "corpus_key": corpus["key"], "model_key": model["key"], "metrics_key": metrics["key"],
    }


def run_grid(grid: Dict, silent: bool = False) -> Dict:
    """Run (or find in the cache) every cell; write results.csv/json, summary.md, grid.png."""
    grid = {**grid, "silent": silent, "gold_scores": gold_scores(grid.get("gold_metrics"))}
    output = Path(grid["output"])
    cache = Cache(output, silent)
    todo = cells(grid)
    rows = []
    for i, cell in enumerate(todo, 1):
        if not silent:
            msg.divider(f"Cell {i}/{len(todo)}: " + ", ".join(f"{k} {v}" for k, v in cell.items()))
        rows.append(run_cell(cache, grid, cell))
    varied = [f for f in FACTORS if len({row[f] for row in rows}) > 1]
    tag = f"{grid['tag']}-" if grid.get("tag") else ""
    write_results(rows, output, grid, tag)
    (output / f"{tag}summary.md").write_text(summary_markdown(rows, varied, grid), encoding="utf8")
    plot(rows, varied, grid["gold_scores"], output / f"{tag}grid.png")
    ran = sum(e["action"] == "ran" for e in cache.log)
    if not silent:
        msg.good(f"{len(rows)} cells, {ran} steps run, {len(cache.log) - ran} found done → "
                 f"{output / (tag + 'results.csv')}, {output / (tag + 'summary.md')}, {output / (tag + 'grid.png')}")
    return {"rows": rows, "log": cache.log, "varied": varied}


def write_results(rows: List[Dict], output: Path, grid: Dict, tag: str = "") -> None:
    output.mkdir(parents=True, exist_ok=True)
    with (output / f"{tag}results.csv").open("w", newline="", encoding="utf8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in grid.items() if k not in ("silent",)}
    srsly.write_json(output / f"{tag}results.json", {"grid": options, "rows": rows})


def mean_sd(values: Sequence[Optional[float]]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "–"
    return f"{statistics.mean(values):.3f} ± {sd}"


def groups(rows: List[Dict], factors: Sequence[str]) -> Dict[tuple, List[Dict]]:
    out: Dict[tuple, List[Dict]] = {}
    for row in sorted(rows, key=lambda r: tuple(r[f] for f in factors)):
        out.setdefault(tuple(row[f] for f in factors), []).append(row)
    return out


def summary_markdown(rows: List[Dict], varied: Sequence[str], grid: Dict) -> str:
    """Rows: the varied factors (the adaptation share always); columns: mean ± sd over seeds."""
    factors = [f for f in FACTORS if f in varied or f == "fraction"]
    gold = grid["gold_scores"]
    measures = ["strict_f1", "token_f1", "ratio_strict_f1", "ratio_token_f1", "ngram_recall_5", "volume_reached"]
    header = [f.replace("_", " ") for f in factors] + [
        "seeds", "strict F1", "token F1", "ratio strict", "ratio token", "5-gram recall", "volume reached"]
    if "annotator_fraction" in varied:  # the synthetic model is bounded by its annotator
        measures.append("annotator_token_f1")
        header.append("annotator token F1")
    lines = [f"# Ablation grid: {grid['dataset']}", "",
             f"Synthetic models ({Path(grid['config']).stem}, {grid['train_steps']} steps) scored on the real test "
             f"split; mean ± standard deviation over seeds ({', '.join(map(str, grid['seeds']))}); "
             "ratio = synthetic / gold model F1. Fixed: " + ", ".join(
                 f"{f.replace('_', ' ')} {rows[0][f]}" for f in FACTORS if f not in factors) + ".", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if gold["strict_f1"] is not None:
        lines.append("| " + " | ".join(["gold model"] + [""] * (len(factors) - 1)) +
                     f" | | {gold['strict_f1']:.3f} | {gold['token_f1']:.3f} | 1 | 1 |" + " |" * (len(measures) - 4))
    for values, members in groups(rows, factors).items():
        cells_ = [f"{v:g}" if isinstance(v, float) else str(v) for v in values] + [str(len(members))]
        cells_ += [mean_sd([r[k] for r in members]) for k in measures]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict], varied: Sequence[str], gold: Dict, path: Path) -> None:
    """F1 against the adaptation share, one line per combination of the other varied factors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [f for f in varied if f != "fraction"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, gold_key, title in ((axes[0], "strict_f1", "strict_f1", "strict entity F1"),
                                     (axes[1], "token_f1", "token_f1", "token F1 (the paper's measure)")):
        for line, members in groups(rows, others).items():
            points = groups(members, ["fraction"])
            xs = [100 * x for (x,) in points]
            ys = [statistics.mean(r[key] for r in m) for m in points.values()]
            sds = [statistics.stdev(r[key] for r in m) if len(m) > 1 else 0.0 for m in points.values()]
            label = ", ".join(f"{f.replace('_', ' ')} {v}" for f, v in zip(others, line)) or "synthetic"
            ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=3, label=label)
        if gold[gold_key] is not None:
            ax.axhline(gold[gold_key], color="grey", linestyle="--", label="gold model")
        ax.set_xlabel("adaptation share of the gold training notes (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 on the real test split (mean ± sd over seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(
    dataset: str = typer.Argument(..., help="Corpus name: reads corpus/<dataset>/{train,dev,test}.spacy"),
    lang: str = typer.Option("es", "--lang", help="Language of the corpus"),
    config: Path = typer.Option(Path("configs/ner_cpu.cfg"), "--config", help="NER training config (annotators and synthetic models)"),
    fractions: str = typer.Option("0.05,0.25,0.95", "--fractions", help="Adaptation shares of the gold training notes (0 = no adaptation)"),
    volumes: str = typer.Option("0.1", "--volumes", help="Synthetic volumes, as multiples of the gold training words (paper: 0.05,1,4)"),
    seeds: str = typer.Option("0", "--seeds", help="Repeated seeds (LoRA init and order, sampling, synthetic model training)"),
    annotator_fractions: str = typer.Option("1.0", "--annotator-fractions", help="Shares of the gold notes the annotator is trained on (1.0 = the gold model)"),
    base_models: str = typer.Option(DEFAULT_BASE, "--base-models", help="Generators: hub names, local folders or gemma3-270m"),
    gen_vocabulary: str = typer.Option("full", "--gen-vocabulary", help="full and/or corpus (comma list: an axis)"),
    adapt_epochs: float = typer.Option(1.0, "--adapt-epochs", help="Adapter epochs (when --adapt-max-steps is 0)"),
    adapt_max_steps: int = typer.Option(0, "--adapt-max-steps", help="Adapter optimizer steps (0: from epochs)"),
    adapt_seq_len: int = typer.Option(256, "--adapt-seq-len", help="Tokens per adapter training block"),
    adapt_batch_size: int = typer.Option(8, "--adapt-batch-size", help="Blocks per adapter step"),
    adapt_precision: str = typer.Option("fp32", "--adapt-precision", help="fp32 or bf16"),
    lora_rank: int = typer.Option(8, "--lora-rank", help="LoRA rank"),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help="LoRA alpha"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Most tokens per generated note"),
    train_steps: int = typer.Option(6000, "--train-steps", help="Steps of each synthetic model (training.max_steps)"),
    annotator_steps: int = typer.Option(0, "--annotator-steps", help="Steps of annotators trained on a share (0: the config's)"),
    transformer_model: str = typer.Option("FacebookAI/xlm-roberta-base", "--transformer-model", help="Encoder of ner_trf"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per machine-annotated chunk"),
    corpus_dir: Path = typer.Option(Path("corpus"), "--corpus-dir", help="Folder holding <dataset>/{train,dev,test}.spacy"),
    gold_model: Optional[Path] = typer.Option(None, "--gold-model", help="Gold annotator (default training/<dataset>/<config>/model-best)"),
    gold_metrics: Optional[Path] = typer.Option(None, "--gold-metrics", help="Gold model's scores (default metrics/<dataset>/<config>.json)"),
    generate_config: Path = typer.Option(Path("configs/generate.cfg"), "--generate-config", help="Generation config"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Grid folder (default grid/<dataset>)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads for adaptation and generation (0: default)"),
    n_process: int = typer.Option(1, "--n-process", help="Processes of machine annotation"),
    tag: str = typer.Option("", "--tag", help="Prefix of the tables and plot (TAG-results.csv ...), to keep several grids over one cache"),
):
    """Run the ablation grid: adapt, generate, annotate, train, score each cell, reusing finished steps."""
    name = config.stem
    try:
        grid = make_grid(
            dataset=dataset, lang=lang, config=config, fractions=fractions, volumes=volumes, seeds=seeds,
            annotator_fractions=annotator_fractions, base_models=base_models, gen_vocabularies=gen_vocabulary,
            adapt_epochs=adapt_epochs, adapt_max_steps=adapt_max_steps, adapt_seq_len=adapt_seq_len,
            adapt_batch_size=adapt_batch_size, adapt_precision=adapt_precision, lora_rank=lora_rank,
            lora_alpha=lora_alpha, max_new_tokens=max_new_tokens, train_steps=train_steps,
            annotator_steps=annotator_steps, transformer_model=transformer_model, max_words=max_words,
            train=corpus_dir / dataset / "train.spacy", dev=corpus_dir / dataset / "dev.spacy",
            test=corpus_dir / dataset / "test.spacy",
            gold_model=gold_model or Path("training") / dataset / name / "model-best",
            gold_metrics=gold_metrics or Path("metrics") / dataset / f"{name}.json",
            generate_config=generate_config, output=output or Path("grid") / dataset, gpu_id=gpu_id,
            threads=threads, n_process=n_process)
        if not Path(grid["gold_metrics"]).exists():
            msg.warn(f"{grid['gold_metrics']} not found: no ratios to the gold model (run the evaluate command)")
        run_grid({**grid, "tag": tag})
    except (GridError, AdaptError, GenerateError, CorpusError, OSError) as err:
        title, *details = str(err).split("\n")
        msg.fail(title)
        for line in details:
            msg.text(line)
        sys.exit(1)


if __name__ == "__main__":
    typer.run(main)
