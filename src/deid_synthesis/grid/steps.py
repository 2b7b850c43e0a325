"""The grid's steps: each reuses the project's own function and keeps its output in the cache.

    OUTPUT/subsets/<key>/train.spacy      the gold documents of a share (data seed 0)
    OUTPUT/adapters/<key>/                generation.adapt on them (fraction 0: no adapter)
    OUTPUT/synthetic/<key>/samples.jsonl  generation.generate (resumes after an interruption)
    OUTPUT/privacy/<key>/                 5-gram recall, copy rate and PHI strings reproduced,
                                          against the adaptation notes
    OUTPUT/annotators/<key>/model-best    an annotator trained on a share of the gold notes
                                          (the config's seed, gold dev for selection)
    OUTPUT/corpus/<key>/{train,dev}.spacy deid_synthesis.annotate (held-out synthetic dev)
    OUTPUT/models/<key>/model-best        deid_synthesis.train, as a subprocess like project.yml
    OUTPUT/metrics/<key>/scores.json      deid_synthesis.evaluate on the real test split

The adapter is trained on the share's subset DocBin (its manifest says fraction 1.0 of that
file; the grid's settings.json says which share it is). Fraction 0 has no adapter, so its
"adapter" is shared by all seeds; the gold annotator (share 1.0, trained by the `train`
command) is shared by all cells.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

import spacy
import srsly
from wasabi import msg

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from clinical_deid.io import read_docbin, read_jsonl, write_docbin
from deid_synthesis.annotate import annotate
from deid_synthesis.cli_util import load_pipeline
from deid_synthesis.evaluate import evaluate
from deid_synthesis.generation.adapt import DEFAULT_LEARNING_RATE, adapt, documents_hash, select_documents
from deid_synthesis.generation.generate import generate
from deid_synthesis.grid.cache import Cache
from deid_synthesis.grid.plan import DATA_SEED, GridError
from deid_synthesis.privacy import PhiIndex, ngram_recall, phi_reproduction, read_gold

ROOT = Path(__file__).resolve().parents[3]  # the project folder (src/deid_synthesis/grid/ is three below)


def subset_step(cache: Cache, grid: Dict, fraction: float) -> Dict:
    """The gold training documents of a share, chosen with the data seed, as a DocBin."""
    def run(folder: Path) -> Dict:
        docs = read_docbin(grid["train"])
        chosen = select_documents(len(docs), fraction, DATA_SEED)
        write_docbin([docs[i] for i in chosen], folder / "train.spacy")
        ids = [str(docs[i].user_data.get("id", i)) for i in chosen]
        return {"path": str(folder / "train.spacy"), "documents": len(chosen), "of": len(docs),
                "documents_hash": documents_hash(ids)}

    settings = {"train": cache.fingerprint(grid["train"]), "fraction": fraction, "data_seed": DATA_SEED}
    return cache.run("subsets", settings, run, f"{fraction:g} of the gold notes")


def adapter_step(cache: Cache, grid: Dict, cell: Dict) -> Dict:
    """generation.adapt on the share's documents (chosen with the data seed), trained with the cell's seed."""
    import torch  # the adapter's device is part of its settings

    fraction, base = cell["fraction"], cell["base_model"]

    def run(train: Path, share: float, seed: int) -> Callable[[Path], Dict]:
        def fn(folder: Path) -> Dict:
            manifest = adapt(train, folder, base_model=base, fraction=share, seed=seed, rank=grid["lora_rank"],
                             alpha=grid["lora_alpha"], learning_rate=grid["adapt_learning_rate"],
                             epochs=grid["adapt_epochs"], max_steps=grid["adapt_max_steps"],
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
    # The learning rate joined the key after the first grids ran (at the default): only another
    # rate is part of the key, so those grids' adapters stay found.
    if grid["adapt_learning_rate"] != DEFAULT_LEARNING_RATE:
        settings["adapt_learning_rate"] = grid["adapt_learning_rate"]
    # All of the subset (fraction 1.0 of it): the seed then only drives the LoRA init and batch order.
    return cache.run("adapters", settings, run(Path(subset["path"]), 1.0, cell["seed"]),
                     f"fraction {fraction:g}, seed {cell['seed']} ({base})")


def generate_step(cache: Cache, grid: Dict, cell: Dict, adapter: Dict) -> Dict:
    """generation.generate with the cell's adapter, volume and seed (prompts carry no real PHI)."""
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
        synth = [record["text"] for _, _, record in read_jsonl(synthetic["samples"])]
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
    cmd = [sys.executable, "-m", "scripts.train", str(Path(grid["config"]).resolve()), "--output",
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
    """Strict and token P/R/F of a trained model on the real test split, and all its scores."""
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
    """deid_synthesis.annotate of the cell's synthetic notes by its annotator (held-out synthetic dev)."""
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
    """The synthetic model: trained on the machine-annotated corpus with the cell's seed."""
    settings = {"corpus": corpus["key"], "config": cache.fingerprint(grid["config"]), "lang": grid["lang"],
                "steps": grid["train_steps"], "seed": cell["seed"], "transformer": grid["transformer_model"],
                "device": "gpu" if grid["gpu_id"] >= 0 else "cpu"}

    def run(folder: Path) -> Dict:
        train_spacy(grid, folder, Path(corpus["train"]), Path(corpus["dev"]), grid["train_steps"], cell["seed"])
        return {"path": str(folder / "model-best"),
                "train_seconds": srsly.read_json(folder / "train_time.json")["seconds"]}

    return cache.run("models", settings, run, f"{grid['train_steps']} steps, seed {cell['seed']}")


def metrics_step(cache: Cache, grid: Dict, model: Dict) -> Dict:
    """The synthetic model's scores on the real test split."""
    settings = {"model": model["key"], "test": cache.fingerprint(grid["test"])}

    def run(folder: Path) -> Dict:
        scores = scores_of(Path(model["path"]), grid["test"])
        srsly.write_json(folder / "scores.json", scores.pop("scores"))
        return scores

    return cache.run("metrics", settings, run, "on the real test split")
