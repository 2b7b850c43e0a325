"""Collect every scored run into one Markdown table, read from the JSON the steps wrote.

One row per metrics/<dataset>/<config>.json: strict entity P/R/F (MEDDOCAN subtrack 1),
token F1 (the paper's measure), merged span F1 (subtrack 2), leak score, and the training
time from training/<dataset>/<config>/train_time.json. Nothing is retyped by hand.
"""
from pathlib import Path
from typing import List

import srsly

from deid_synthesis.markdown import table

HEADER = ("dataset", "config", "strict P", "strict R", "strict F1", "= spacy evaluate", "token F1",
          "merged F1", "leak/sent", "train min", "steps")


def collect_rows(metrics_dir: Path, training_dir: Path) -> List[tuple]:
    """One row of HEADER's cells per scored run.

    metrics_dir (Path): the metrics/ folder. training_dir (Path): the training/ folder.
    RETURNS (List[tuple]): the rows, formatted, sorted by dataset and config.
    """
    rows = []
    for path in sorted(Path(metrics_dir).glob("*/*.json")):
        if path.name.endswith(".spacy-evaluate.json"):
            continue
        scores = srsly.read_json(path)
        if "ents_strict" not in scores:
            continue
        dataset, config = path.parent.name, path.stem
        timing_path = Path(training_dir) / dataset / config / "train_time.json"
        timing = srsly.read_json(timing_path) if timing_path.exists() else {}
        steps = timing.get("overrides", {}).get("training.max_steps", "")
        strict = scores["ents_strict"]
        rows.append((dataset, config, f"{strict['p']:.4f}", f"{strict['r']:.4f}", f"{strict['f']:.4f}",
                     agrees_with_spacy(path, strict),
                     f"{scores['token']['f']:.4f}", f"{scores['spans_merged']['f']:.4f}",
                     f"{scores['leak']['leak_score']:.3f}",
                     f"{timing['seconds'] / 60:.1f}" if timing else "", str(steps)))
    return rows


def agrees_with_spacy(path: Path, strict: dict) -> str:
    """'yes' when `spacy evaluate` (written beside) gives the same strict P/R/F, else 'NO'."""
    spacy_path = path.with_name(path.stem + ".spacy-evaluate.json")
    if not spacy_path.exists():
        return "not run"
    theirs = srsly.read_json(spacy_path)
    same = all(abs(theirs[f"ents_{k}"] - strict[k]) < 1e-9 for k in "prf")
    return "yes" if same else "NO"


def to_markdown(rows: List[tuple]) -> str:
    """RETURNS (str): the results table."""
    return table(HEADER, rows, "ll" + "r" * (len(HEADER) - 2))
