"""The measures a de-identification NER is judged by, and the scorer that gives them to spaCy.

`spacy evaluate` reports one entity measure: exact (label, start, end) match. A
de-identification study needs more: the MEDDOCAN shared task ranks systems on three span
measures and a leak score, the paper this project reproduces (Vakili et al., 2025) reports
token-level F1, and a privacy officer wants to know how many identifiers slip through unmasked.

The strict measures come from spaCy's `Scorer.score_spans` (labelled; label ignored). The
merged-span measure and the leak score follow the definitions of MEDDOCAN's official
evaluation script (PlanTL-GOB-ES/SPACCC_MEDDOCAN, scripts/CODALAB-Evaluation-script/), see
`merged_span_counts` and `count_full_stops`; the token measure is computed here too: spaCy
has no such measure. `deid.ner_scorer.v1`, set as the `ner` component's scorer in the
training configs, returns them with spaCy's usual `ents_*` keys, so `spacy train` and
`spacy evaluate` report them too. Only counts, labels and scores leave this module, never
document text.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import spacy
from spacy.scorer import PRFScore, Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example

from clinical_deid import lang

SpanGetter = Callable[[Doc, str], Iterable[Span]]
ATTR = "ents"


def prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """Precision, recall and F1 from counts, by spaCy's PRFScore (0 instead of a division by zero).

    tp (int): true positives. fp (int): false positives. fn (int): false negatives.
    RETURNS (Dict[str, float]): p, r, f and the three counts.
    """
    score = PRFScore(tp=tp, fp=fp, fn=fn)
    return {"p": score.precision, "r": score.recall, "f": score.fscore, "tp": tp, "fp": fp, "fn": fn}


def by_label(tp: Counter, fp: Counter, fn: Counter, support: Counter) -> Dict[str, Any]:
    """Micro totals, per-label scores and the macro average (unweighted mean over the labels).

    RETURNS (Dict[str, Any]): prf's keys, `per_label` {label: prf + support} and `macro` {p, r, f}.
    """
    labels = sorted(set(tp) | set(fp) | set(fn) | set(support))
    per_label = {label: {**prf(tp[label], fp[label], fn[label]), "support": support[label]} for label in labels}
    macro = {key: (sum(per_label[label][key] for label in labels) / len(labels) if labels else 0.0)
             for key in ("p", "r", "f")}
    return {**prf(sum(tp.values()), sum(fp.values()), sum(fn.values())), "per_label": per_label, "macro": macro}


def merge_spans(text: str, spans: Iterable[Tuple[int, int]]) -> Set[Tuple[int, int]]:
    """Merge (start, end) character spans separated only by non-alphanumeric characters.

    MEDDOCAN's "subtrack 2 merged" normalisation: "Calle Mayor" + "5" with a space between
    them become one span "Calle Mayor 5"; so do "Juan" + ", " + "Ana". Touching spans merge too.
    text (str): the document's text. spans (Iterable[Tuple[int, int]]): character offsets.
    RETURNS (Set[Tuple[int, int]]): the merged spans.
    """
    merged: List[List[int]] = []
    # The official script takes the later span's end, which shortens the merged span when the
    # later one lies inside it; the same unless spans nest (spaCy entities never do).
    for start, end in sorted(set(spans)):
        if merged and not any(char.isalnum() for char in text[merged[-1][1] : start]):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return {(start, end) for start, end in merged}


Offsets = Set[Tuple[int, int]]


def merged_span_counts(text: str, gold: Offsets, pred: Offsets) -> Tuple[int, int, int]:
    """tp, fp, fn of one document by MEDDOCAN's "subtrack 2 merged" definition.

    As the official script counts: the hits are the spans found exactly (gold ∩ pred) together
    with the merged spans found exactly (merged gold ∩ merged pred), a set of both kinds, so
    "Juan" + "Pérez" found as annotated count three hits ("Juan", "Pérez", "Juan Pérez"). A
    predicted span that is no gold span is a false positive unless it lies inside a hit; a
    gold span not predicted is a false negative unless it lies inside a hit. Hence merged P
    and R can exceed the strict ones; the counts are not a partition of gold or predictions.
    On MEDDOCAN test, the official script itself, run on the BRAT gold and the same
    predictions, gives the same tp, fp and fn (README, "Scores as MEDDOCAN's official script
    computes them").
    text (str): the text. gold (Offsets): gold (start, end). pred (Offsets): predicted.
    RETURNS (Tuple[int, int, int]): tp, fp, fn.
    """
    hits = (gold & pred) | (merge_spans(text, gold) & merge_spans(text, pred))

    def inside_hit(span: Tuple[int, int]) -> bool:
        return any(start <= span[0] and span[1] <= end for start, end in hits)

    fp = sum(1 for span in pred - gold if not inside_hit(span))
    fn = sum(1 for span in gold - pred if not inside_hit(span))
    return len(hits), fp, fn


def merged_scores(examples: Sequence[Example]) -> Dict[str, float]:
    """MEDDOCAN's merged-span P/R/F, micro-averaged over EXAMPLES (character offsets, labels ignored).

    examples (Sequence[Example]): predictions (already scorable) and gold with NER annotation.
    RETURNS (Dict[str, float]): prf's keys.
    """
    tp = fp = fn = 0
    for example in examples:
        gold = {(ent.start_char, ent.end_char) for ent in example.reference.ents}
        pred = ({(ent.start_char, ent.end_char) for ent in example.predicted.ents}
                if has_ner(example.predicted) else set())
        counts = merged_span_counts(example.reference.text, gold, pred)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
    return prf(tp, fp, fn)


def has_ner(doc: Doc) -> bool:
    """Whether a doc carries NER annotation (docs without it are skipped, as spaCy does)."""
    return doc.has_annotation("ENT_IOB")


# Words that end with a period without ending a sentence: titles and street types ("Dr.",
# "Avda.", "Ctra.") of every language of clinical_deid.lang.
_ABBREVIATION = re.compile("|".join(
    [re.escape(word) for word in sorted(lang.union("titles"))]
    + [pattern[: pattern.rindex("\\.")] for pattern in lang.in_order("street_type_patterns")
       if pattern.endswith(("\\.", "\\.?"))]), re.IGNORECASE)
# One period, not in a run of them, not followed by a letter or digit; the word before it
# (with its inner periods: "T.A.C", "2.5") captured.
_PERIOD = re.compile(r"(\w+(?:\.\w+)*)?(?<!\.)\.(?![.\w])")


def count_full_stops(text: str) -> int:
    """Sentences as MEDDOCAN's leak score counts them: full stops.

    The official script counts the lines of a sentence-split copy of each document
    (annotated_corpora/sentence_splitted/<id>.ann): one line per period that FreeLing's
    tokenizer keeps as a token of its own (tag Fp). A last sentence without a period is not
    counted; "?" and "!" are not either. That copy is not reproduced here; this counts the
    same periods from the text: a period that is not part of "..." and is not followed by a
    letter or digit ("2.5", "hotmail.com", the inner periods of "T.A.C." are not), and whose
    word is not an abbreviation: a single capital letter ("Sexo: H."), a word with inner
    periods and no digit ("T.A.C."), or a title or street type of clinical_deid.lang
    ("Dr.", "Avda.", "Ctra."). "75 mg./m2" and "malignidad.," count, as in FreeLing.
    Compared with the official files of 9 MEDDOCAN test documents: 8 of their 262 periods
    are judged otherwise ("2.º-A." counts twice there, "6A." and "1000cc." not at all), 5
    documents agree exactly and the totals agree (262). On the 250 test documents this
    counts 7,556 sentences, where the official leak score of the model in issue 12 (0.0369,
    278 entities not found exactly) implies 7,524 to 7,544: leak scores here are about 0.3 %
    below the official ones (0.0368 for that model).
    A text with characters but no full stop counts as one sentence (the script would count
    none; no MEDDOCAN document is such).
    text (str): the document's text.
    RETURNS (int): its sentences.
    """
    count = 0
    for match in _PERIOD.finditer(text):
        word = match.group(1) or ""
        if (len(word) == 1 and word.isupper()) or ("." in word and not any(c.isdigit() for c in word)) \
                or _ABBREVIATION.fullmatch(word):
            continue
        count += 1
    return count if count or not text.strip() else 1


def count_sentences(doc: Doc) -> int:
    """Sentences of a gold doc: its own if annotated (CoNLL input), else `count_full_stops`."""
    if len(doc) == 0:
        return 0
    if doc.has_annotation("SENT_START"):
        return sum(1 for _ in doc.sents)
    return count_full_stops(doc.text)


def scorable_prediction(gold: Doc, pred: Doc) -> Doc:
    """`pred`, or a copy without the entities over gold tokens whose annotation is missing
    (ent_iob 0): as in spaCy's NER scorer, those are neither right nor wrong."""
    unknown = bytearray(len(gold.text))
    for token in gold:
        if token.ent_iob == 0:
            unknown[token.idx : token.idx + len(token)] = b"\x01" * len(token)
    if not any(unknown):
        return pred
    kept = [ent for ent in pred.ents if not any(unknown[ent.start_char : ent.end_char])]
    copy = pred.copy()
    copy.set_ents(kept, default="outside")
    return copy


def span_scores(examples: Sequence[Example], getter: SpanGetter = getattr, labeled: bool = True) -> Dict[str, Any]:
    """`Scorer.score_spans` on the `ents` of EXAMPLES, with the counts behind its ratios.

    examples (Sequence[Example]): predictions and gold (predictions already scorable).
    getter (SpanGetter): the spans of a doc.
    labeled (bool): whether the label must match too.
    RETURNS (Dict[str, Any]): `by_label`'s result when labeled, else `prf`'s.
    """
    scores = Scorer.score_spans(examples, ATTR, getter=getter, has_annotation=has_ner, labeled=labeled)
    n_gold, n_pred = _span_counts(examples, getter, labeled)
    if not labeled:
        return _from_recall(scores[f"{ATTR}_r"], n_gold[""], n_pred[""])
    tp, fp, fn = Counter(), Counter(), Counter()
    for label, label_scores in (scores[f"{ATTR}_per_type"] or {}).items():
        counts = _from_recall(label_scores["r"], n_gold[label], n_pred[label])
        tp[label], fp[label], fn[label] = counts["tp"], counts["fp"], counts["fn"]
    result = by_label(tp, fp, fn, n_gold)
    # Same counts, same arithmetic (PRFScore): the figures are spaCy's to the last bit.
    assert scores[f"{ATTR}_f"] in (None, result["f"])
    return result


def _span_counts(examples: Sequence[Example], getter: SpanGetter, labeled: bool) -> Tuple[Counter, Counter]:
    """Gold and predicted spans per label ("" unlabelled) as score_spans counts them: distinct,
    predictions aligned to the gold tokens. spaCy's scores carry ratios only; the JSON keeps counts."""
    n_gold, n_pred = Counter(), Counter()
    for example in examples:
        if not has_ner(example.reference):
            continue
        predicted = getter(example.predicted, ATTR) if has_ner(example.predicted) else []
        for counter, spans in ((n_gold, getter(example.reference, ATTR)),
                               (n_pred, example.get_aligned_spans_x2y(predicted))):
            counter.update(label if labeled else "" for label, _, _ in {(s.label_, s.start, s.end) for s in spans})
    return n_gold, n_pred


def _from_recall(recall: Optional[float], n_gold: int, n_pred: int) -> Dict[str, float]:
    """prf's dict from spaCy's recall and the numbers of gold and predicted spans."""
    tp = round((recall or 0.0) * n_gold)
    return prf(tp, n_pred - tp, n_gold - tp)


class TokenLeakTally:
    """Token-level counts (the paper's measure) and unmasked identifiers, one example at a time.

    A gold token's label is the entity containing it, its predicted label the predicted entity
    covering its first character, else O; tokens of missing gold annotation are skipped.
    A gold entity is missed when no predicted entity (any label) overlaps it at all.
    """

    def __init__(self) -> None:
        self.token = (Counter(), Counter(), Counter(), Counter())  # tp fp fn support
        self.missed = self.gold_entities = self.sentences = 0
        self.missed_per_label: Counter = Counter()

    def add(self, gold: Doc, scored: Doc, pred: Doc) -> None:
        """gold (Doc): the reference. scored (Doc): `scorable_prediction`. pred (Doc): the prediction."""
        self._add_tokens(gold, scored)
        self._add_leak(gold, pred)

    def _add_tokens(self, gold: Doc, scored: Doc) -> None:
        tp, fp, fn, support = self.token
        char_label: List[Optional[str]] = [None] * len(gold.text)
        for ent in scored.ents:
            char_label[ent.start_char : ent.end_char] = [ent.label_] * (ent.end_char - ent.start_char)
        for token in gold:
            if token.ent_iob == 0:
                continue  # missing gold annotation: neither right nor wrong
            gold_label = token.ent_type_ or None
            pred_label = char_label[token.idx] if token.idx < len(char_label) else None
            if gold_label is not None:
                support[gold_label] += 1
            if pred_label is not None and pred_label == gold_label:
                tp[gold_label] += 1
                continue
            if pred_label is not None:
                fp[pred_label] += 1
            if gold_label is not None:
                fn[gold_label] += 1

    def _add_leak(self, gold: Doc, pred: Doc) -> None:
        # Every predicted entity counts, whatever its label: masked with the wrong type is masked.
        covered = bytearray(len(gold.text))
        for ent in pred.ents:
            covered[ent.start_char : ent.end_char] = b"\x01" * (ent.end_char - ent.start_char)
        for ent in gold.ents:
            self.gold_entities += 1
            if not any(covered[ent.start_char : ent.end_char]):
                self.missed += 1
                self.missed_per_label[ent.label_] += 1
        self.sentences += count_sentences(gold)

    def leak(self, not_found: int) -> Dict[str, Any]:
        """MEDDOCAN's leak score: gold entities not found exactly (label, start, end) per sentence.

        not_found (int): the strict entity measure's false negatives (the official numerator).
        RETURNS (Dict[str, Any]): fn (= not_found), missed (no predicted entity overlaps
            them at all), gold_entities, sentences, leak_score (fn / sentences; 0 without
            sentences, as the official script) and missed_per_label.
        """
        return {"fn": not_found, "missed": self.missed, "gold_entities": self.gold_entities,
                "sentences": self.sentences, "leak_score": not_found / self.sentences if self.sentences else 0.0,
                "missed_per_label": dict(sorted(self.missed_per_label.items()))}


def score_examples(examples: Iterable[Example]) -> Dict[str, Any]:
    """Every measure of de-identification, micro-averaged over EXAMPLES.

    examples (Iterable[Example]): predictions and gold; tokenisations may differ.
    RETURNS (Dict[str, Any]): n_docs, n_docs_scored, n_tokens, ents_strict, spans_strict,
        spans_merged, token, leak (described in deid_synthesis.evaluate.KEYS).
    """
    examples = list(examples)
    scored: List[Example] = []
    tally = TokenLeakTally()
    for example in examples:
        gold, pred = example.reference, example.predicted
        if not has_ner(gold):
            continue
        scorable = scorable_prediction(gold, pred)
        scored.append(example if scorable is pred else Example(scorable, gold))
        tally.add(gold, scorable, pred)
    strict = span_scores(scored)
    return {
        "n_docs": len(examples),
        "n_docs_scored": len(scored),
        "n_tokens": sum(len(example.reference) for example in examples),
        "ents_strict": strict,
        "spans_strict": span_scores(scored, labeled=False),
        "spans_merged": merged_scores(scored),
        "token": by_label(*tally.token),
        "leak": tally.leak(strict["fn"]),
    }


def score_docs(gold_docs: Iterable[Doc], pred_docs: Iterable[Doc]) -> Dict[str, Any]:
    """`score_examples` on docs paired by position. Pure: neither list is modified.

    RETURNS (Dict[str, Any]): the scores. Raises ValueError naming the document index when
    the lists differ in length or a pair in text (lengths only, never the text).
    """
    gold_docs, pred_docs = list(gold_docs), list(pred_docs)
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"Gold and predicted documents differ in number: one list ends at index "
                         f"{min(len(gold_docs), len(pred_docs))}.")
    for i, (gold, pred) in enumerate(zip(gold_docs, pred_docs)):
        if gold.text != pred.text:
            raise ValueError(f"Document {i}: predicted text differs from gold text "
                             f"({len(pred.text)} vs {len(gold.text)} characters).")
    return score_examples(Example(pred, gold) for gold, pred in zip(gold_docs, pred_docs))


def score_deid_ner(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """The `deid.ner_scorer.v1` scorer: spaCy's NER keys (ents_p/r/f, ents_per_type), the
    label-free and merged span F1, token P/R/F and the leak score.

    token_p/r/f replace spaCy's tokenization P/R/F in `nlp.evaluate` (those are 1.0 whenever
    the gold is tokenised by the pipeline's own tokenizer; token_acc stays spaCy's).
    RETURNS (Dict[str, Any]): the scores.
    """
    scores = score_examples(examples)
    strict, token = scores["ents_strict"], scores["token"]
    return {
        **{f"ents_{key}": strict[key] for key in "prf"},
        "ents_per_type": {label: {key: row[key] for key in "prf"} for label, row in strict["per_label"].items()},
        "spans_strict_f": scores["spans_strict"]["f"],
        "spans_merged_f": scores["spans_merged"]["f"],
        **{f"token_{key}": token[key] for key in "prf"},
        "leak_score": scores["leak"]["leak_score"],
    }


@spacy.registry.scorers("deid.ner_scorer.v1")
def make_deid_ner_scorer() -> Callable[..., Dict[str, Any]]:
    """RETURNS (Callable): `score_deid_ner`, for `[components.ner.scorer]`."""
    return score_deid_ner
