"""The grid's runner: every cell through the steps, then the tables and the plot.

OUTPUT/results.csv and results.json hold one row per cell (settings, scores on the real
test split, ratios to the gold model, privacy figures, step wall times: the time the
artefact took when it was made, so cells sharing one report the same); OUTPUT/summary.md
and OUTPUT/grid.png are made by `deid_synthesis.grid.table`. Generated text is never printed.
"""
import csv
from pathlib import Path
from typing import Dict, List, Optional

import srsly
from wasabi import msg

from deid_synthesis.grid.cache import Cache
from deid_synthesis.grid.plan import FACTORS, cells
from deid_synthesis.grid.steps import (adapter_step, annotate_step, annotator_step, generate_step, metrics_step,
                                       model_step, privacy_step)
from deid_synthesis.grid.table import plot, summary_markdown


def gold_scores(path: Optional[Path]) -> Dict:
    """The gold model's strict and token F1 from its scores file (None when there is none)."""
    if path is None or not Path(path).exists():
        return {"strict_f1": None, "token_f1": None}
    scores = srsly.read_json(path)
    return {"strict_f1": scores["ents_strict"]["f"], "token_f1": scores["token"]["f"]}


def ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    """value / reference to 4 decimals; None when either is missing (or the reference is 0)."""
    return round(value / reference, 4) if value is not None and reference else None


def run_cell(cache: Cache, grid: Dict, cell: Dict) -> Dict:
    """Every step of one cell (each found in the cache when done); the cell's row of results."""
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
    """results.csv and results.json (the grid's options and the rows) in the output folder."""
    output.mkdir(parents=True, exist_ok=True)
    with (output / f"{tag}results.csv").open("w", newline="", encoding="utf8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in grid.items() if k not in ("silent",)}
    srsly.write_json(output / f"{tag}results.json", {"grid": options, "rows": rows})
