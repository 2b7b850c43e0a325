"""One Markdown report per synthetic run, so that a run can be judged without opening ten JSON files.

It answers three questions, every number read from the JSON the steps wrote (never retyped):
how close the synthetic model comes to the gold one (strict and token F1, per label, and the
ratio synthetic / gold against the target of 0.95); where it loses and why (annotator,
generator, or volume/other, by a rule stated in the report); and what the run cost and gave
away (settings, wall time of each step, privacy counts). Writes report.md, its PNG plots and
report.json (the numbers used, for the grid and the README) into one folder.

The gold and synthetic scores are required; any other missing input gives a section saying
that step was not run. Only counts are read from the privacy JSON, never its strings (it
holds PHI when written with --show-strings).

    python -m scripts.report --dataset meddocan --run v100-corpus --config ner_cpu \\
        --output reports/meddocan/v100-corpus-ner_cpu
"""
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import srsly  # noqa: E402

from clinical_deid.io import atomic_open, atomic_path  # noqa: E402
from deid_synthesis.markdown import cell, formatted_table as table  # noqa: E402
from deid_synthesis.privacy.membership import plot_roc  # noqa: E402
from deid_synthesis.report_privacy import attack_counts, attacks_md, privacy_counts, privacy_md  # noqa: E402

TARGET = 0.95  # synthetic / gold strict F1 the method aims for
ANNOTATOR_MIN_F1 = 0.9  # below this, the annotator's own F1 on a label explains the loss
UNDER_PRODUCED = 0.5  # synthetic entities per 1k words below this share of gold's: the generator's
REQUIRED = {"gold_scores": "evaluate", "synthetic_scores": "evaluate-synthetic"}  # input: the step writing it



class ReportError(Exception):
    pass


def default_paths(dataset: str, run: str, config: str) -> Dict[str, Path]:
    """Where the project's commands write each input of a run."""
    return {
        "gold_scores": Path(f"metrics/{dataset}/{config}.json"),
        "synthetic_scores": Path(f"metrics/{dataset}/synthetic-{run}-{config}.json"),
        "corpus_report": Path(f"corpus/{dataset}/report.json"),
        "annotate_report": Path(f"corpus/{dataset}/synthetic-{run}/annotate.json"),
        "privacy": Path(f"metrics/{dataset}/privacy-{run}.json"),
        "adapter_manifest": Path(f"training/{dataset}/adapter-{run}/manifest.json"),
        "generation_report": Path(f"synthetic/{dataset}/{run}/report.json"),
        "gold_train_time": Path(f"training/{dataset}/{config}/train_time.json"),
        "synthetic_train_time": Path(f"training/{dataset}/synthetic-{run}-{config}/train_time.json"),
        "membership": Path(f"metrics/{dataset}/membership-{run}.json"),
        "canaries": Path(f"metrics/{dataset}/canaries-{run}.json"),
    }


def load_inputs(paths: Dict[str, Path]) -> Dict[str, Optional[dict]]:
    """Each input's JSON, or None for a missing optional one; ReportError for a missing required one."""
    data = {}
    for name, path in paths.items():
        if path is not None and Path(path).is_file():
            data[name] = srsly.read_json(path)
        elif name in REQUIRED:
            raise ReportError(f"{path}: no such file (the {name.replace('_', ' ')}: run the {REQUIRED[name]} step first)")
        else:
            data[name] = None
    return data


def ratio(a: float, b: float) -> Optional[float]:
    return a / b if b else None


def compare(gold: dict, synth: dict) -> Dict:
    """Overall and per-label strict F1 of both models; ratios synthetic / gold."""
    overall = {m: {"gold": gold[key]["f"], "synthetic": synth[key]["f"], "ratio": ratio(synth[key]["f"], gold[key]["f"])}
               for m, key in (("strict_f", "ents_strict"), ("token_f", "token"), ("merged_f", "spans_merged"))}
    g_labels, s_labels = gold["ents_strict"]["per_label"], synth["ents_strict"]["per_label"]
    per_label = {}
    for label in sorted(set(g_labels) | set(s_labels), key=lambda lab: (-g_labels.get(lab, {}).get("support", 0), lab)):
        g, s = g_labels.get(label, {}), s_labels.get(label, {})
        gf, sf = g.get("f", 0.0), s.get("f", 0.0)
        support = g.get("support", s.get("support", 0))
        per_label[label] = {"support": support, "gold_f": gf, "synthetic_f": sf, "ratio": ratio(sf, gf),
                            "weighted_drop": (gf - sf) * support}
    return {"overall": overall, "per_label": per_label}


def cause(row: dict, corpus_row: Optional[dict]) -> str:
    """The rule the report states: annotator, then generator, else volume/other."""
    if row["gold_f"] < ANNOTATOR_MIN_F1:
        return "annotator"
    if corpus_row is not None and corpus_row.get("synthetic_per_1k", 0) < UNDER_PRODUCED * corpus_row.get("gold_per_1k", 0):
        return "generator"
    return "volume/other"


def losses(per_label: Dict, annotate: Optional[dict], top: int) -> List[dict]:
    """The `top` labels with the largest F1 drop × support, each with its likely cause."""
    corpus = (annotate or {}).get("per_label", {})
    worst = sorted((lab for lab, row in per_label.items() if row["weighted_drop"] > 0),
                   key=lambda lab: -per_label[lab]["weighted_drop"])[:top]
    return [{"label": lab, **per_label[lab], "gold_per_1k": corpus.get(lab, {}).get("gold_per_1k"),
             "synthetic_per_1k": corpus.get(lab, {}).get("synthetic_per_1k"),
             "cause": cause(per_label[lab], corpus.get(lab) if annotate else None)} for lab in worst]


def settings(data: Dict[str, Optional[dict]]) -> Dict[str, Optional[dict]]:
    """Every setting of each step, as its file records it (None: the step was not run)."""
    manifest, gen, ann = data["adapter_manifest"], data["generation_report"], data["annotate_report"]
    keys = lambda d, names: {k: d.get(k) for k in names}  # noqa: E731
    trained = lambda t: t and {"config": t.get("config"), **t.get("overrides", {})}  # noqa: E731
    return {
        "adapter": manifest and {**manifest.get("hyperparameters", {}), **keys(manifest, (
            "base_model", "fraction", "n_documents", "n_tokens", "steps", "trainable_parameters", "device"))},
        "generation": gen and {**gen.get("provenance", {}), **keys(gen, (
            "prompts", "samples_per_prompt", "volume", "target_words", "words", "tokens", "kept", "volume_reached",
            "complete")), "dropped": sum((gen.get("dropped") or {}).values())},
        "annotation": ann and keys(ann, ("max_words", "seed", "batch_size", "n_process")),
        "train gold": trained(data["gold_train_time"]),
        "train synthetic": trained(data["synthetic_train_time"]),
    }


def wall_times(data: Dict[str, Optional[dict]]) -> Dict[str, Optional[float]]:
    """Seconds of each step (generation: all its sessions, as it can be resumed)."""
    gen, seconds = data["generation_report"], lambda d: d and d.get("seconds")  # noqa: E731
    return {"adapt": seconds(data["adapter_manifest"]),
            "generate": sum(s.get("seconds", 0) for s in gen["sessions"]) if gen and gen.get("sessions") else None,
            "annotate": seconds(data["annotate_report"]),
            "train gold": seconds(data["gold_train_time"]),
            "train synthetic": seconds(data["synthetic_train_time"])}


def summarize(data: Dict[str, Optional[dict]], paths: Dict[str, Path], top: int = 5) -> Dict:
    """Everything the report shows, as one JSON-ready dict (written as report.json)."""
    scores = compare(data["gold_scores"], data["synthetic_scores"])
    gold, ann, corpus = data["gold_scores"], data["annotate_report"], data["corpus_report"]
    strict_ratio = scores["overall"]["strict_f"]["ratio"]
    return {
        "inputs": {name: str(path) for name, path in paths.items()},
        "missing": [name for name, value in data.items() if value is None],
        "corpus_card": corpus and {key: corpus[key] for key in ("about", "demo") if key in corpus},
        "target": TARGET, **scores,
        "annotator": {"strict_p": gold["ents_strict"]["p"], "strict_r": gold["ents_strict"]["r"],
                      "strict_f": gold["ents_strict"]["f"], "token_f": gold["token"]["f"],
                      "leak_score": gold["leak"]["leak_score"]},
        "losses": losses(scores["per_label"], ann, top) if strict_ratio is not None and strict_ratio < TARGET else [],
        "corpus": {"gold": corpus and {split: {k: part.get(k) for k in ("documents", "words", "entities")}
                                       for split, part in corpus.items() if isinstance(part, dict)},
                   "synthetic": ann and {k: ann.get(k) for k in ("documents", "chunks", "words", "entities")},
                   "per_label": ann and ann["per_label"]},
        "privacy": data["privacy"] and privacy_counts(data["privacy"]),
        "attacks": attack_counts(data["membership"], data["canaries"]),
        "pseudonymized": ann and ann.get("pseudonymized") and {
            k: ann["pseudonymized"].get(k) for k in ("replaced", "kept_common", "second_pass", "left")},
        "settings": settings(data),
        "times": wall_times(data),
        "loss_curve": data["adapter_manifest"] and data["adapter_manifest"].get("loss_curve"),
    }


def _barh(ax, labels: List[str], series: Dict[str, List[float]]) -> None:
    height = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.barh([k + i * height for k in range(len(labels))], values, height, label=name)
    ax.set_yticks([k + height * (len(series) - 1) / 2 for k in range(len(labels))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.legend(fontsize=8)


def plots(summary: Dict, out: Path) -> Dict[str, str]:
    """PNG files of the report; returns {name: file name} for the Markdown links."""
    made = {}

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        made[name.split(".")[0]] = name

    labels = list(summary["per_label"])
    fig, ax = plt.subplots(figsize=(7, 1 + 0.35 * len(labels)))
    _barh(ax, labels, {"gold": [r["gold_f"] for r in summary["per_label"].values()],
                       "synthetic": [r["synthetic_f"] for r in summary["per_label"].values()]})
    ax.set(xlim=(0, 1), xlabel="strict F1 on the real test split")
    save(fig, "f1_per_label.png")
    fig, ax = plt.subplots(figsize=(4, 2.5))
    names = ["strict F1", "token F1"]
    ax.bar(names, [summary["overall"][m]["ratio"] or 0 for m in ("strict_f", "token_f")], color="tab:orange")
    ax.axhline(TARGET, color="black", linestyle="--", linewidth=1, label=f"target {TARGET}")
    ax.set(ylim=(0, 1.1), ylabel="synthetic / gold")
    ax.bar_label(ax.containers[0], fmt="%.3f", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    save(fig, "ratios.png")
    if summary["corpus"]["per_label"]:
        rows = summary["corpus"]["per_label"]
        fig, ax = plt.subplots(figsize=(7, 1 + 0.35 * len(rows)))
        _barh(ax, list(rows), {"real (gold train)": [r.get("gold_per_1k") or 0 for r in rows.values()],
                               "synthetic": [r["synthetic_per_1k"] for r in rows.values()]})
        ax.set(xlabel="entities per 1,000 words")
        save(fig, "entities_per_1k.png")
    if summary["loss_curve"]:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(*zip(*summary["loss_curve"]), linewidth=1)
        ax.set(xlabel="optimizer step", ylabel="training loss")
        save(fig, "adapter_loss.png")
    membership = summary["attacks"]["membership"]
    if membership and membership.get("roc"):
        plot_roc(membership, out / "membership_roc.png")
        made["membership_roc"] = "membership_roc.png"
    return made


def _scores_md(s: Dict, images: Dict[str, str]) -> List[str]:
    o = s["overall"]
    rows = [[name, o[m]["gold"], o[m]["synthetic"], o[m]["ratio"], f"{TARGET:g}" if m == "strict_f" else "-"]
            for name, m in (("strict F1", "strict_f"), ("token F1", "token_f"), ("merged span F1", "merged_f"))]
    return ["## Gold vs synthetic model (real test split)\n",
            table(["measure", "gold", "synthetic", "synthetic / gold", "target"], rows),
            f"![ratios]({images['ratios']})\n",
            "Strict F1 per label (support: gold entities in the test split):\n",
            table(["label", "support", "gold F1", "synthetic F1", "synthetic / gold"],
                  [[lab, r["support"], r["gold_f"], r["synthetic_f"], r["ratio"]] for lab, r in s["per_label"].items()]),
            f"![strict F1 per label]({images['f1_per_label']})\n",
            "## The annotator's own score\n",
            "The gold model is also the annotator of the synthetic notes: its test scores bound what its labels "
            "can teach (its per-label F1 is the gold F1 column above).\n",
            table(["strict P", "strict R", "strict F1", "token F1", "leaks / sentence"], [list(s["annotator"].values())])]


def _losses_md(s: Dict) -> List[str]:
    ratio_ = s["overall"]["strict_f"]["ratio"]
    if ratio_ is None:
        return []
    if ratio_ >= TARGET:
        return [f"Strict F1 ratio {cell(ratio_)} ≥ target {TARGET:g}: no loss analysis needed.\n"]
    unchecked = "" if s["corpus"]["per_label"] else " (no annotation report: generator not checked)"
    return ["## Where the synthetic model loses\n",
            f"Strict F1 ratio {cell(ratio_)} < target {TARGET:g}. The labels with the largest loss, (gold F1 − "
            "synthetic F1) × support. Likely cause, by rule: **annotator** when the annotator's own F1 on the label is "
            f"below {ANNOTATOR_MIN_F1:g}; else **generator** when the synthetic corpus has fewer than "
            f"{UNDER_PRODUCED:g} × gold's entities of the label per 1,000 words; else **volume/other**{unchecked}.\n",
            table(["label", "support", "gold F1", "synthetic F1", "F1 drop × support", "gold per 1k",
                   "synthetic per 1k", "cause"],
                  [[r["label"], r["support"], r["gold_f"], r["synthetic_f"], r["weighted_drop"], r["gold_per_1k"],
                    r["synthetic_per_1k"], r["cause"]] for r in s["losses"]])]


def _corpus_md(s: Dict, images: Dict[str, str]) -> List[str]:
    gold, synth, per_label = s["corpus"]["gold"], s["corpus"]["synthetic"], s["corpus"]["per_label"]
    md = ["## Corpus statistics\n"]
    rows = [[f"gold {split}", r["documents"], r["words"], r["entities"]] for split, r in (gold or {}).items()]
    if synth:
        rows.append(["synthetic (machine-annotated)", synth["documents"], synth["words"], synth["entities"]])
    md.append(table(["corpus", "documents", "words", "entities"], rows))
    if not gold:
        md.append("Gold corpus report not found: the convert step was not run.\n")
    if not per_label:
        return md + ["Synthetic corpus annotation report not found: the annotate step was not run.\n"]
    return md + ["Entities per label, gold training split vs synthetic (words counted by the annotate step):\n",
                 table(["label", "gold", "gold per 1k", "synthetic", "synthetic per 1k", "ratio"],
                       [[lab, r.get("gold"), r.get("gold_per_1k"), r["synthetic"], r["synthetic_per_1k"],
                         r.get("ratio")] for lab, r in per_label.items()]),
                 f"![entities per 1,000 words]({images['entities_per_1k']})\n"]


def _settings_md(s: Dict, images: Dict[str, str]) -> List[str]:
    md = ["## Settings\n"]
    for step, values in s["settings"].items():
        md += [f"### {step}\n", table(["setting", "value"], [[k, f"{v:g}" if isinstance(v, float) else v]
                                                            for k, v in values.items()])
               if values else f"No {step} file: not run.\n"]
    if "adapter_loss" in images:
        md.append(f"![adapter training loss]({images['adapter_loss']})\n")
    times = [*s["times"].items(), ("total (steps run)", sum(v for v in s["times"].values() if v is not None))]
    return md + ["## Wall time\n", table(["step", "seconds", "minutes"],
                                         [[k, f"{v:,.1f}", f"{v / 60:,.1f}"] if v is not None else [k, "not run", "-"]
                                          for k, v in times])]


def _card_md(card: Optional[Dict]) -> List[str]:
    """The corpus card first (deid_synthesis.corpus.card): a demo run says so before any figure."""
    if not card or not card.get("about"):
        return []
    if card.get("demo"):
        return [f"> **This is a demo, not a result.** The corpus is {card['about']}\n"]
    return [f"> Corpus: {card['about']}\n"]


def to_markdown(s: Dict, title: str, images: Dict[str, str]) -> str:
    inputs = [f"- {name}: `{path}`" + (" (missing: not run)" if name in s["missing"] else "")
              for name, path in s["inputs"].items()]
    md = [f"# {title}\n", *_card_md(s.get("corpus_card")), "Every number below is read from these files, written by the project's steps:\n",
          "\n".join(inputs) + "\n", *_scores_md(s, images), *_losses_md(s), *_corpus_md(s, images),
          *privacy_md(s["privacy"]), *attacks_md(s, images), *_settings_md(s, images)]
    return "\n".join(md)


def write_report(paths: Dict[str, Path], output_dir: Path, title: str = "Synthetic run report", top: int = 5) -> Dict:
    """Read the inputs, write report.md, its PNGs and report.json into `output_dir`; return the summary."""
    summary = summarize(load_inputs(paths), paths, top)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images = plots(summary, output_dir)
    with atomic_open(output_dir / "report.md") as handle:
        handle.write(to_markdown(summary, title, images))
    with atomic_path(output_dir / "report.json") as tmp:
        srsly.write_json(tmp, {k: v for k, v in summary.items() if k != "loss_curve"} | {"plots": images})
    return summary
