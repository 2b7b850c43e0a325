"""The grid's summary: a Markdown table in the shape of the paper's (mean ± standard deviation
over seeds) and a plot of F1 against the adaptation share.

The table is joined by hand rather than through wasabi's Markdown renderer, which writes an
empty cell as two spaces ("|  |"), where the summary's rows (and its tests) have one.
"""
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from deid_synthesis.grid.plan import FACTORS


def mean_sd(values: Sequence[Optional[float]]) -> str:
    """"mean ± sd" to 3 decimals of the values given ("–" for none, or for the sd of one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "–"
    return f"{statistics.mean(values):.3f} ± {sd}"


def groups(rows: List[Dict], factors: Sequence[str]) -> Dict[tuple, List[Dict]]:
    """The rows grouped by their values of the factors, in sorted order."""
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
        row_cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in values] + [str(len(members))]
        row_cells += [mean_sd([r[k] for r in members]) for k in measures]
        lines.append("| " + " | ".join(row_cells) + " |")
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
