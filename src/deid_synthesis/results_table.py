"""Collect every scored run into one Markdown table, read from the JSON the steps wrote.

One row per metrics/<dataset>/<config>.json: strict entity P/R/F (MEDDOCAN subtrack 1),
token F1 (the paper's measure), merged span F1 (subtrack 2), leak score, and the training
time from training/<dataset>/<config>/train_time.json. Nothing is retyped by hand.

A run that is not complete (a figure missing or not a number, as an evaluation over no
entities writes; scores whose model training/<dataset>/<config>/model-best is gone; a file
that is no JSON) is skipped with the reason, naming its file: the other runs are still listed.
"""
from pathlib import Path
from typing import List, Optional, Tuple

import srsly

from deid_synthesis.markdown import table

HEADER = ("dataset", "config", "strict P", "strict R", "strict F1", "= spacy evaluate", "token F1",
          "merged F1", "leak/sent", "train min", "steps")
# The figures a row needs: (section, key) of the scores evaluate writes.
FIGURES = (("ents_strict", "p"), ("ents_strict", "r"), ("ents_strict", "f"), ("token", "f"),
           ("spans_merged", "f"), ("leak", "leak_score"))


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def incomplete(scores: dict) -> Optional[str]:
    """What a scores file lacks for a row (the first missing or non-numeric figure), or None."""
    for section, name in FIGURES:
        part = scores.get(section)
        value = part.get(name) if isinstance(part, dict) else None
        if not is_number(value):
            state = ("missing" if not (isinstance(part, dict) and name in part)
                     else "null" if value is None else "not a number")
            return f"{section}.{name} is {state} (an evaluation over no entities, or an interrupted run?)"
    strict = scores["ents_strict"]
    if is_number(strict.get("tp")) and is_number(strict.get("fn")) and strict["tp"] + strict["fn"] == 0:
        return "no gold entities in the test set (a corpus converted to 0 entities?)"
    return None


def read_scores(path: Path) -> Tuple[Optional[dict], Optional[str]]:
    """(scores, None) for a scored run's file; (None, None) for another kind of metrics file;
    (None, reason) for one that cannot be read."""
    try:
        scores = srsly.read_json(path)
    except ValueError as err:
        return None, f"not JSON ({type(err).__name__})"
    if not isinstance(scores, dict) or "ents_strict" not in scores:
        return None, None
    return scores, None


def collect_rows(metrics_dir: Path, training_dir: Path) -> Tuple[List[tuple], List[Tuple[Path, str]]]:
    """One row of HEADER's cells per complete scored run, and the runs skipped with their reasons.

    metrics_dir (Path): the metrics/ folder. training_dir (Path): the training/ folder.
    RETURNS (Tuple[List[tuple], List[Tuple[Path, str]]]): the rows, formatted, sorted by dataset
        and config; the (file, reason) of each incomplete run.
    """
    rows, skipped = [], []
    for path in sorted(Path(metrics_dir).glob("*/*.json")):
        if path.name.endswith(".spacy-evaluate.json"):
            continue
        scores, problem = read_scores(path)
        dataset, config = path.parent.name, path.stem
        run_dir = Path(training_dir) / dataset / config
        if scores is not None:
            problem = incomplete(scores)
            if problem is None and not (run_dir / "model-best").is_dir():
                problem = f"no model {run_dir / 'model-best'} (deleted, or a run that never finished)"
        if problem is not None:
            skipped.append((path, problem))
            continue
        if scores is not None:
            rows.append(format_row(path, scores, run_dir))
    return rows, skipped


def format_row(path: Path, scores: dict, run_dir: Path) -> tuple:
    """HEADER's cells of one complete run."""
    timing_path = run_dir / "train_time.json"
    timing = srsly.read_json(timing_path) if timing_path.exists() else {}
    seconds = timing.get("seconds") if isinstance(timing, dict) else None
    overrides = timing.get("overrides") if isinstance(timing, dict) else None
    steps = overrides.get("training.max_steps", "") if isinstance(overrides, dict) else ""
    strict = scores["ents_strict"]
    return (path.parent.name, path.stem, f"{strict['p']:.4f}", f"{strict['r']:.4f}", f"{strict['f']:.4f}",
            agrees_with_spacy(path, strict), f"{scores['token']['f']:.4f}",
            f"{scores['spans_merged']['f']:.4f}", f"{scores['leak']['leak_score']:.3f}",
            f"{seconds / 60:.1f}" if is_number(seconds) else "", str(steps))


def agrees_with_spacy(path: Path, strict: dict) -> str:
    """'yes' when `spacy evaluate` (written beside) gives the same strict P/R/F, 'NO' when it
    differs, 'no figures' when it gave none (no entities), 'not run' without its file."""
    spacy_path = path.with_name(path.stem + ".spacy-evaluate.json")
    if not spacy_path.exists():
        return "not run"
    try:
        theirs = srsly.read_json(spacy_path)
    except ValueError:
        return "unreadable"
    values = [theirs.get(f"ents_{k}") if isinstance(theirs, dict) else None for k in "prf"]
    if not all(is_number(v) for v in values):
        return "no figures"
    same = all(abs(value - strict[k]) < 1e-9 for value, k in zip(values, "prf"))
    return "yes" if same else "NO"


def to_markdown(rows: List[tuple]) -> str:
    """RETURNS (str): the results table."""
    return table(HEADER, rows, "ll" + "r" * (len(HEADER) - 2))
