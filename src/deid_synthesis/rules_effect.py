"""What each structured-PHI rule adds to a trained NER model, measured on gold data.

The rules of src/clinical_deid/rules.py (e-mail, URL, IP, phone, fax, DNI, NIE, personnummer,
numeric dates, postcodes) catch formats a model may miss, but a model trained on the corpus
often finds them already, and a rule that fires where the annotators marked nothing, or
takes a span with other boundaries than the gold one, costs strict F1. So each rule is kept
only where the test data say it helps. This script runs the NER once over a gold DocBin,
then merges the matches of each set of rules into copies of the predicted docs (exactly as
the `deid_rules` component does in a pipeline) and scores each set with clinical_deid.scoring:

* the model alone, and the model + all rules;
* the model + one rule (leave-one-in): what the rule adds on its own;
* the model + all rules but one (leave-one-out): what the rule adds to the others.

A rule helps when leaving it out lowers overall strict F1; when overall F1 does not move, it
helps when leaving it out lowers the strict F1 of its label. It hurts in the opposite
cases, and does nothing otherwise. The rules that help can be written as a JSON list, the
`rules` setting of `deid_rules`. Only counts, labels and scores are written: never text.

    python -m scripts.rules_effect MODEL corpus/meddocan/test.spacy \\
        --output metrics/meddocan/rules_effect-ner_cpu.json \\
        --markdown metrics/meddocan/rules_effect-ner_cpu.md --rules-output metrics/meddocan/rules-ner_cpu.json
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc

from clinical_deid.rules import RULES, DeidRules
from clinical_deid.scoring import score_docs
from deid_synthesis.markdown import table

SPANS_KEY = "deid_rules"
# Components that would add rules or rewrite the text: off while the model predicts.
DEID_PIPES = ("deid_rules", "deid_transform")
EPS = 1e-9  # F1 from identical counts is bit-identical; anything above this is a real change


def predict(nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 64) -> List[Doc]:
    """The model's predictions on the gold texts, without any de-identification component."""
    disabled = [name for name in DEID_PIPES if name in nlp.pipe_names]
    with nlp.select_pipes(disable=disabled):
        return list(nlp.pipe((nlp.make_doc(gold.text) for gold in gold_docs), batch_size=batch_size))


def apply_rules(pred_docs: Sequence[Doc], component: DeidRules) -> List[Doc]:
    """Copies of `pred_docs` with the rules merged into their entities; the originals stay."""
    return [component(doc.copy()) for doc in pred_docs]


def configurations(rules: Sequence[str]) -> Dict[str, List[str]]:
    """Name → rules: model alone, all, each rule alone (+R), all but each rule (all-R)."""
    configs: Dict[str, List[str]] = {"model": [], "all": list(rules)}
    configs.update({f"+{rule}": [rule] for rule in rules})
    configs.update({f"all-{rule}": [r for r in rules if r != rule] for rule in rules})
    return configs


def verdict(overall_delta: float, label_delta: float) -> str:
    """helps / hurts / no effect from F(all) - F(all without the rule), overall and for its label."""
    for delta in (overall_delta, label_delta):  # the overall change decides when there is one
        if delta > EPS:
            return "helps"
        if delta < -EPS:
            return "hurts"
    return "no effect"


def rules_effect(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], lang: str,
                 rules: Sequence[str] = RULES, policy: str = "longest", preset: str = "auto",
                 label_map: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """Score every configuration of `rules` merged into `pred_docs` against `gold_docs`.

    Pure: neither list is modified. Rules mapped to no label (label_map "") are left out.
    """
    probe = DeidRules(SPANS_KEY, lang, rules=list(rules), preset=preset, label_map=label_map, policy=policy)
    candidates = [rule for rule in RULES if rule in probe.rules]  # RULES order, labelled ones
    rule_labels = {rule: probe.labels[rule] for rule in candidates}
    results: Dict[str, Dict[str, object]] = {}
    for name, enabled in configurations(candidates).items():
        component = DeidRules(SPANS_KEY, lang, rules=enabled, preset=preset, label_map=label_map, policy=policy)
        docs = apply_rules(pred_docs, component)
        scores = score_docs(gold_docs, docs)
        strict = scores["ents_strict"]
        matches = sum(len(doc.spans[SPANS_KEY]) for doc in docs)
        in_ents = sum(len({(s.start, s.end, s.label) for s in doc.spans[SPANS_KEY]}
                          & {(e.start, e.end, e.label) for e in doc.ents}) for doc in docs)
        results[name] = {
            "rules": enabled,
            "strict": {key: strict[key] for key in ("p", "r", "f", "tp", "fp", "fn")},
            "per_label": strict["per_label"],
            "missed": scores["leak"]["missed"],
            "rule_matches": matches,
            "rule_matches_in_ents": in_ents,
        }

    def f(name: str, label: Optional[str] = None) -> float:
        scores = results[name]["strict"] if label is None else results[name]["per_label"].get(label, {"f": 0.0})
        return scores["f"]

    effects: Dict[str, Dict[str, object]] = {}
    for rule, label in rule_labels.items():
        alone, without = f"+{rule}", f"all-{rule}"
        out_overall, out_label = f("all") - f(without), f("all", label) - f(without, label)
        effects[rule] = {
            "label": label,
            "leave_one_in": {"overall_f_delta": f(alone) - f("model"), "label_f_delta": f(alone, label) - f("model", label),
                             "rule_matches": results[alone]["rule_matches"],
                             "rule_matches_in_ents": results[alone]["rule_matches_in_ents"]},
            "leave_one_out": {"overall_f_delta": out_overall, "label_f_delta": out_label},
            "verdict": verdict(out_overall, out_label),
        }
    by_verdict = {v: [r for r in candidates if effects[r]["verdict"] == v] for v in ("helps", "hurts", "no effect")}
    return {
        "n_docs": len(gold_docs),
        "lang": lang,
        "policy": policy,
        "preset": probe.preset,
        "rule_labels": rule_labels,
        "configurations": results,
        "effects": effects,
        "recommended": by_verdict["helps"],
        "hurt": by_verdict["hurts"],
        "no_effect": by_verdict["no effect"],
    }


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def signed(delta: float) -> str:
    """A difference of F1 with its sign, "0" when below EPS."""
    return f"{delta:+.4f}" if abs(delta) > EPS else "0"


def to_markdown(result: Dict[str, object]) -> str:
    """Overall strict P/R/F per configuration, per-label F1 of the rules' labels, the verdicts."""
    configs, effects = result["configurations"], result["effects"]
    base = configs["model"]
    labels = list(dict.fromkeys(result["rule_labels"].values()))

    def label_f(config: Dict, label: str) -> float:
        return config["per_label"].get(label, {"f": 0.0})["f"]

    overall = [[name, f"{c['strict']['p']:.4f}", f"{c['strict']['r']:.4f}", f"{c['strict']['f']:.4f}",
                signed(c["strict"]["f"] - base["strict"]["f"]), f"{c['rule_matches']:,}",
                f"{c['rule_matches_in_ents']:,}", f"{c['missed']:,}"] for name, c in configs.items()]
    per_label = [[name] + [f"{label_f(c, label):.4f} ({signed(label_f(c, label) - label_f(base, label))})"
                           for label in labels] for name, c in configs.items()]
    verdicts = [[rule, e["label"], f"{e['leave_one_in']['rule_matches']:,}",
                 signed(e["leave_one_in"]["overall_f_delta"]), signed(e["leave_one_in"]["label_f_delta"]),
                 signed(e["leave_one_out"]["overall_f_delta"]), signed(e["leave_one_out"]["label_f_delta"]),
                 e["verdict"]] for rule, e in effects.items()]
    names = lambda rules: ", ".join(rules) or "none"  # noqa: E731
    return "\n".join([
        f"Documents: {result['n_docs']:,}; policy: {result['policy']}; labels from preset {result['preset']}. "
        "Strict = exact label and span (MEDDOCAN subtrack 1); Δ against the model alone.", "",
        table(["Configuration", "Strict P", "Strict R", "Strict F", "ΔF", "Rule matches", "In ents",
               "Missed entities"], overall, "lrrrrrrr"),
        "Strict F1 of the labels the rules map to (Δ against the model alone):", "",
        table(["Configuration", *labels], per_label, "l" + "r" * len(labels)),
        "Effect of each rule. Alone: model + the rule − model. Left out: all rules − all but the rule "
        "(positive: the rule helps).", "",
        table(["Rule", "Label", "Matches alone", "ΔF alone", "Δ label F alone", "ΔF left out", "Δ label F left out",
               "Verdict"], verdicts, "llrrrrrl"),
        f"Recommended (help): {names(result['recommended'])}.",
        f"Hurt: {names(result['hurt'])}.", f"No effect: {names(result['no_effect'])}.",
    ]) + "\n"
