"""Score any spaCy pipeline on any DocBin with the measures de-identification needs.

`spacy evaluate` reports one entity measure: exact (label, start, end) match. A
de-identification study needs more. The MEDDOCAN shared task ranks systems on three
span measures, the paper this project reproduces (Vakili et al., 2025) reports
token-level F1, and a privacy officer wants to know how many identifiers slip through
unmasked. This script computes all of them from one pass of `nlp.pipe` over the data
and writes them as JSON (for plots and comparisons) and as a Markdown table (for the
README). Only counts, labels and scores are printed or written: never document text.

    python -m deid_synthesis.evaluate MODEL DATA_PATH --output metrics.json --markdown metrics.md

The strict measure (`ents_strict`) reproduces `spacy evaluate`'s ents_p/ents_r/ents_f
on the same data whenever the predicted documents are tokenised like the gold ones
(they are, when the gold DocBin was made with the pipeline's own tokenizer): like
spaCy, documents without NER annotation are skipped and predictions over tokens whose
gold annotation is missing are neither right nor wrong.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, Iterable, List, Optional, Set, Tuple

import spacy
import typer
from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, DocBin
from wasabi import msg

from deid_synthesis.cli_util import load_pipeline

KEYS = """JSON keys written by scripts/evaluate.py

Every measure is micro-averaged over the whole data set and carries
p, r, f (precision, recall, F1; f = 0 when p + r = 0, p = 0 when nothing was
predicted, r = 0 when there is nothing to find) and the counts tp, fp, fn.

n_docs          documents read from the DocBin
n_docs_scored   documents with NER annotation (the others are skipped, as spaCy does)
n_words         tokens in the gold documents
ents_strict     exact (label, start_char, end_char) match: MEDDOCAN subtrack 1;
                equals spacy evaluate's ents_p / ents_r / ents_f
  .per_label    {label: {p, r, f, tp, fp, fn, support}}; support = gold entities
  .macro        {p, r, f}: unweighted mean over labels found in gold or predictions
spans_strict    exact (start_char, end_char) match, label ignored: MEDDOCAN subtrack 2 strict
spans_merged    as spans_strict after merging, in gold and predictions separately, the
                spans separated only by non-alphanumeric characters: subtrack 2 merged
token           token-level match on the gold tokens (the paper's measure): a token's
                gold label is the entity containing it, its predicted label the
                predicted entity covering its first character, else O;
                tp: pred == gold != O; fp: pred != O, pred != gold; fn: gold != O, pred != gold
  .per_label    {label: {p, r, f, tp, fp, fn, support}}; support = gold tokens
  .macro        {p, r, f}
leak            identifiers left unmasked
  .missed       gold entities that no predicted entity (any label) overlaps at all
  .gold_entities
  .sentences    gold sentences (doc.sents if annotated, else a rule-based sentencizer)
  .leak_score   missed / sentences: missed identifiers per sentence
  .missed_per_label {label: count}
speed_wps       words per second of nlp.pipe (only when a pipeline was run)
"""

Span3 = Tuple[str, int, int]  # (label, start_char, end_char)


# ---------------------------------------------------------------------------
# Counting helpers
# ---------------------------------------------------------------------------


def prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """Precision, recall and F1 from counts, with 0 instead of a division by zero."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    # Same expression as spaCy's PRFScore, so the numbers agree to the last bit.
    f = 2 * ((p * r) / (p + r)) if p + r else 0.0
    return {"p": p, "r": r, "f": f, "tp": tp, "fp": fp, "fn": fn}


def _labelled(
    tp: Counter, fp: Counter, fn: Counter, support: Counter
) -> Dict[str, object]:
    """Micro totals, per-label scores and the macro average of per-label counts."""
    labels = sorted(set(tp) | set(fp) | set(fn) | set(support))
    per_label = {}
    for label in labels:
        scores = prf(tp[label], fp[label], fn[label])
        scores["support"] = support[label]
        per_label[label] = scores
    n = len(labels)
    macro = {
        key: (sum(per_label[lab][key] for lab in labels) / n if n else 0.0)
        for key in ("p", "r", "f")
    }
    result = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    result["per_label"] = per_label
    result["macro"] = macro
    return result


def merge_spans(text: str, spans: Iterable[Tuple[int, int]]) -> Set[Tuple[int, int]]:
    """Merge (start, end) spans separated only by non-alphanumeric characters.

    This is MEDDOCAN's "subtrack 2 merged" normalisation: "Calle Mayor" + "5" with a
    space between them become one span "Calle Mayor 5". Overlapping or touching spans
    merge too.
    """
    merged: List[List[int]] = []
    for start, end in sorted(set(spans)):
        if merged and not any(ch.isalnum() for ch in text[merged[-1][1] : start]):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return {(s, e) for s, e in merged}


def count_sentences(doc: Doc) -> int:
    """Sentences of a gold doc: its own if annotated, else a rule-based sentencizer's.

    The sentencizer runs on a copy, so the gold doc is never modified.
    """
    if len(doc) == 0:
        return 0
    if doc.has_annotation("SENT_START"):
        return sum(1 for _ in doc.sents)
    return sum(1 for _ in _SENTENCIZER(doc.copy()).sents)


_SENTENCIZER = Sentencizer()


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


class _Tally:
    """Running counts for every measure; `add` one (gold, pred) pair at a time."""

    def __init__(self) -> None:
        self.n_docs = 0
        self.n_scored = 0
        self.n_words = 0
        self.strict = (Counter(), Counter(), Counter(), Counter())  # tp fp fn support
        self.token = (Counter(), Counter(), Counter(), Counter())
        self.spans = [0, 0, 0]  # tp fp fn
        self.merged = [0, 0, 0]
        self.missed = 0
        self.gold_entities = 0
        self.sentences = 0
        self.missed_per_label: Counter = Counter()

    def add(self, gold: Doc, pred: Doc) -> None:
        self.n_docs += 1
        self.n_words += len(gold)
        if not gold.has_annotation("ENT_IOB"):
            return  # no NER annotation: nothing to score against (spaCy skips it too)
        self.n_scored += 1
        text = gold.text
        # Characters of gold tokens whose entity annotation is missing (ent_iob == 0).
        unknown = bytearray(len(text))
        for token in gold:
            if token.ent_iob == 0:
                unknown[token.idx : token.idx + len(token)] = b"\x01" * len(token)
        gold_ents: List[Span3] = [(e.label_, e.start_char, e.end_char) for e in gold.ents]
        pred_ents: List[Span3] = [
            (e.label_, e.start_char, e.end_char)
            for e in pred.ents
            if not any(unknown[e.start_char : e.end_char])
        ]
        self._add_strict(gold_ents, pred_ents)
        self._add_spans(text, gold_ents, pred_ents)
        self._add_tokens(gold, pred_ents)
        self._add_leak(gold, gold_ents, pred.ents)

    def _add_strict(self, gold_ents: List[Span3], pred_ents: List[Span3]) -> None:
        tp, fp, fn, support = self.strict
        gold_set, pred_set = set(gold_ents), set(pred_ents)
        for label, _, _ in gold_ents:
            support[label] += 1
        for key in pred_set:
            (tp if key in gold_set else fp)[key[0]] += 1
        for key in gold_set - pred_set:
            fn[key[0]] += 1

    def _add_spans(self, text: str, gold_ents: List[Span3], pred_ents: List[Span3]) -> None:
        gold_set = {(s, e) for _, s, e in gold_ents}
        pred_set = {(s, e) for _, s, e in pred_ents}
        for tally, g, p in (
            (self.spans, gold_set, pred_set),
            (self.merged, merge_spans(text, gold_set), merge_spans(text, pred_set)),
        ):
            tally[0] += len(g & p)
            tally[1] += len(p - g)
            tally[2] += len(g - p)

    def _add_tokens(self, gold: Doc, pred_ents: List[Span3]) -> None:
        tp, fp, fn, support = self.token
        # Predicted label of every character; a token takes the one of its first character.
        char_label: List[Optional[str]] = [None] * len(gold.text)
        for label, start, end in pred_ents:
            char_label[start:end] = [label] * (end - start)
        for token in gold:
            if token.ent_iob == 0:
                continue  # missing gold annotation: neither right nor wrong
            g = token.ent_type_ or None
            p = char_label[token.idx] if token.idx < len(char_label) else None
            if g is not None:
                support[g] += 1
            if p is not None and p == g:
                tp[g] += 1
                continue
            if p is not None:
                fp[p] += 1
            if g is not None:
                fn[g] += 1

    def _add_leak(self, gold: Doc, gold_ents: List[Span3], pred_ents) -> None:
        # Every predicted entity counts here, whatever its label: a masked identifier
        # with the wrong type is still masked.
        covered = bytearray(len(gold.text))
        for ent in pred_ents:
            covered[ent.start_char : ent.end_char] = b"\x01" * (ent.end_char - ent.start_char)
        for label, start, end in gold_ents:
            self.gold_entities += 1
            if not any(covered[start:end]):
                self.missed += 1
                self.missed_per_label[label] += 1
        self.sentences += count_sentences(gold)

    def result(self) -> Dict[str, object]:
        return {
            "n_docs": self.n_docs,
            "n_docs_scored": self.n_scored,
            "n_words": self.n_words,
            "ents_strict": _labelled(*self.strict),
            "spans_strict": prf(*self.spans),
            "spans_merged": prf(*self.merged),
            "token": _labelled(*self.token),
            "leak": {
                "missed": self.missed,
                "gold_entities": self.gold_entities,
                "sentences": self.sentences,
                "leak_score": self.missed / self.sentences if self.sentences else 0.0,
                "missed_per_label": dict(sorted(self.missed_per_label.items())),
            },
        }


_END = object()


def score_docs(gold_docs: Iterable[Doc], pred_docs: Iterable[Doc]) -> Dict[str, object]:
    """Score predicted docs against gold docs, paired by position.

    Pure: neither list is modified. Both docs of a pair must have the same text
    (ValueError naming the document index otherwise); their tokenisation may differ
    (span measures use character offsets, the token measure uses the gold tokens).
    """
    tally = _Tally()
    gold_iter, pred_iter = iter(gold_docs), iter(pred_docs)
    i = 0
    while True:
        gold, pred = next(gold_iter, _END), next(pred_iter, _END)
        if gold is _END and pred is _END:
            break
        if gold is _END or pred is _END:
            raise ValueError(
                f"Gold and predicted documents differ in number: one list ends at index {i}."
            )
        if gold.text != pred.text:
            raise ValueError(
                f"Document {i}: predicted text differs from gold text "
                f"({len(pred.text)} vs {len(gold.text)} characters)."
            )
        tally.add(gold, pred)
        i += 1
    return tally.result()


def read_docbin(path: Path, nlp: Language) -> List[Doc]:
    """Read all docs of a DocBin; ValueError naming the file if it can't be read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"DocBin not found: {path}")
    try:
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except Exception as err:  # srsly/msgpack errors have many types
        raise ValueError(f"Can't read DocBin {path}: {type(err).__name__}: {err}") from err


def evaluate(nlp: Language, docbin_path: Path, batch_size: int = 64) -> Dict[str, object]:
    """Run `nlp` over the texts of a DocBin and score the predictions against it.

    Each gold doc's text is tokenised afresh with `nlp.make_doc`, as spaCy's Corpus
    reader does, so the pipeline never sees gold annotation.
    """
    gold_docs = read_docbin(docbin_path, nlp)
    inputs = [nlp.make_doc(gold.text) for gold in gold_docs]
    start = time.perf_counter()
    pred_docs = list(nlp.pipe(inputs, batch_size=batch_size))
    seconds = time.perf_counter() - start
    scores = score_docs(gold_docs, pred_docs)
    n_words = sum(len(doc) for doc in pred_docs)
    scores["speed_wps"] = n_words / seconds if seconds > 0 else 0.0
    return scores


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def to_markdown(scores: Dict[str, object]) -> str:
    """A summary table (measure | P | R | F) and a per-label table."""
    strict, token, leak = scores["ents_strict"], scores["token"], scores["leak"]
    rows = [
        ("Entities, strict (label + span; MEDDOCAN subtrack 1)", strict),
        ("Entities, strict, macro over labels", strict["macro"]),
        ("Spans, strict (label ignored; subtrack 2 strict)", scores["spans_strict"]),
        ("Spans, merged (subtrack 2 merged)", scores["spans_merged"]),
        ("Tokens (paper's measure)", token),
        ("Tokens, macro over labels", token["macro"]),
    ]
    lines = [
        f"Documents: {scores['n_docs']:,}, tokens: {scores['n_words']:,}"
        + (f", speed: {scores['speed_wps']:,.0f} words/s" if "speed_wps" in scores else ""),
        "",
        "| Measure | P | R | F |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {_fmt(s['p'])} | {_fmt(s['r'])} | {_fmt(s['f'])} |" for name, s in rows]
    lines += [
        "",
        f"Leak score: {leak['leak_score']:.4f} missed identifiers per sentence "
        f"({leak['missed']:,} of {leak['gold_entities']:,} gold entities missed entirely, "
        f"{leak['sentences']:,} sentences).",
        "",
        "| Label | Support | Strict P | Strict R | Strict F | Token F | Missed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    token_labels = token["per_label"]
    for label, s in strict["per_label"].items():
        token_f = token_labels[label]["f"] if label in token_labels else 0.0
        lines.append(
            f"| {label} | {s['support']:,} | {_fmt(s['p'])} | {_fmt(s['r'])} | "
            f"{_fmt(s['f'])} | {_fmt(token_f)} | {leak['missed_per_label'].get(label, 0):,} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def main(
    model: Annotated[str, typer.Argument(help="Pipeline to evaluate: a path or an installed package name")],
    data_path: Annotated[Path, typer.Argument(help="Gold DocBin (.spacy) to score against")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the scores as JSON here")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", "-m", help="Write the tables as Markdown here")] = None,
    code: Annotated[Optional[Path], typer.Option("--code", "-c", help="Python file with registered functions the pipeline needs")] = None,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU")] = -1,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Documents per nlp.pipe batch")] = 64,
) -> None:
    """Score MODEL on DATA_PATH: strict/merged MEDDOCAN measures, token F1 and leak score."""
    data_path = Path(data_path)
    output = Path(output) if output is not None else None
    markdown = Path(markdown) if markdown is not None else None
    if not Path(data_path).is_file():
        msg.fail(f"Data file not found: {data_path}", "Pass a DocBin (.spacy) file.", exits=1)
    nlp = load_pipeline(model, code, gpu_id)
    try:
        scores = evaluate(nlp, data_path, batch_size=batch_size)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    msg.divider(f"Scores of {model} on {data_path}")
    print(to_markdown(scores))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf8")
        msg.good(f"Saved scores of {scores['n_docs']:,} documents → {output}")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(scores), encoding="utf8")
        msg.good(f"Saved tables → {markdown}")


if __name__ == "__main__":
    typer.run(main)
