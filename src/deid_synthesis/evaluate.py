"""Score any spaCy pipeline on any DocBin with the measures de-identification needs.

The measures are clinical_deid.scoring's (spaCy's `Scorer.score_spans` for the strict span
measures; merged spans, token F1 and the leak score computed there); this module runs the
pipeline once over the data, times it, and renders the scores as Markdown.
`python -m scripts.evaluate` writes them as JSON (for plots and comparisons) and Markdown
(for the README). Only counts, labels and scores are printed or written: never document text.

The merged-span measure and the leak score follow MEDDOCAN's official evaluation script
(clinical_deid.scoring says how, and where the sentence count differs). The strict measure
(`ents_strict`) reproduces `spacy evaluate`'s ents_p/ents_r/ents_f on the same data whenever
the predicted documents are tokenised like the gold ones (they are, when the gold DocBin was
made with the pipeline's own tokenizer): like spaCy, documents without NER annotation are
skipped and predictions over tokens whose gold annotation is missing are neither right nor
wrong.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from clinical_deid.io import read_docbin, write_text
from clinical_deid.scoring import score_docs
from deid_synthesis.llm_annotation.stats import llm_stats
from deid_synthesis.markdown import table

KEYS = """JSON keys written by scripts/evaluate.py

Every measure is micro-averaged over the whole data set and carries
p, r, f (precision, recall, F1; f = 0 when p + r = 0, p = 0 when nothing was
predicted, r = 0 when there is nothing to find) and the counts tp, fp, fn.

n_docs          documents read from the DocBin
n_docs_scored   documents with NER annotation (the others are skipped, as spaCy does)
n_tokens        spaCy tokens in the gold documents
ents_strict     exact (label, start, end) match: MEDDOCAN subtrack 1;
                equals spacy evaluate's ents_p / ents_r / ents_f
  .per_label    {label: {p, r, f, tp, fp, fn, support}}; support = gold entities
  .macro        {p, r, f}: unweighted mean over labels found in gold or predictions
spans_strict    exact (start, end) match, label ignored: MEDDOCAN subtrack 2 strict
spans_merged    subtrack 2 merged, counted as MEDDOCAN's official script does: merge, in
                gold and predictions separately, the spans separated only by
                non-alphanumeric characters; tp: spans found exactly plus merged spans
                found exactly (both kinds count, so merged P and R can exceed strict);
                fp (fn): a predicted (gold) span that is no gold (predicted) span and
                lies inside no hit
token           token-level match on the gold tokens (the paper's measure): a token's
                gold label is the entity containing it, its predicted label the
                predicted entity covering its first character, else O;
                tp: pred == gold != O; fp: pred != O, pred != gold; fn: gold != O, pred != gold
  .per_label    {label: {p, r, f, tp, fp, fn, support}}; support = gold tokens
  .macro        {p, r, f}
leak            identifiers left unmasked
  .fn           gold entities not found exactly (label, start, end) = ents_strict.fn
  .missed       gold entities that no predicted entity (any label) overlaps at all
  .gold_entities
  .sentences    gold sentences: doc.sents if annotated, else full stops as MEDDOCAN's
                sentence split counts them (clinical_deid.scoring.count_full_stops)
  .leak_score   fn / sentences: MEDDOCAN subtrack 1's leak score
  .missed_per_label {label: entities missed entirely}
tokens_per_second  spaCy tokens per second of nlp.pipe (spacy evaluate's "words/s")
"""


def evaluate(nlp: Language, docbin_path: Path, batch_size: int = 64,
             brat_folder: Optional[Path] = None, progress: bool = False) -> Dict[str, Any]:
    """Run NLP over the texts of a DocBin and score the predictions against it.

    Each gold doc's text is tokenised afresh with `nlp.make_doc`, as spaCy's Corpus reader
    does, so the pipeline never sees gold annotation.
    nlp (Language): the pipeline. docbin_path (Path): the gold DocBin.
    batch_size (int): documents per nlp.pipe batch.
    brat_folder (Optional[Path]): also write gold and predictions there by `write_meddocan_brat`.
    progress (bool): show a progress bar (an LLM annotator takes seconds per document).
    RETURNS (Dict[str, Any]): clinical_deid.scoring's scores and tokens_per_second.
    Raises clinical_deid.io.DataError (a ValueError) naming a DocBin that can't be read.
    """
    gold_docs = read_docbin(docbin_path, nlp.vocab)
    inputs = [nlp.make_doc(gold.text) for gold in gold_docs]
    start = time.perf_counter()
    pred_docs = list(tqdm(nlp.pipe(inputs, batch_size=batch_size), total=len(inputs), desc="evaluate", unit="doc",
                          disable=not progress))
    seconds = time.perf_counter() - start
    scores = score_docs(gold_docs, pred_docs)
    n_tokens = sum(len(doc) for doc in pred_docs)
    scores["tokens_per_second"] = n_tokens / seconds if seconds > 0 else 0.0
    stats = llm_stats(nlp)
    if stats is not None:  # an LLM annotator: what it asked and spent, for the cost of a served run
        scores["llm"] = {**stats, "seconds": round(seconds, 1), "documents": len(inputs)}
    if brat_folder is not None:
        write_meddocan_brat(gold_docs, pred_docs, brat_folder)
    return scores


def brat_lines(doc: Doc) -> str:
    """The entities of DOC as BRAT text-bound annotations, `T1<TAB>LABEL START END<TAB>surface`.

    doc (Doc): a document. RETURNS (str): the .ann file's content (whitespace in a surface
    becomes a space: offsets are what count, and a line must stay one line).
    """
    return "".join(f"T{i}\t{ent.label_} {ent.start_char} {ent.end_char}\t{' '.join(ent.text.split())}\n"
                   for i, ent in enumerate(doc.ents, start=1))


def write_meddocan_brat(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], folder: Path) -> int:
    """Gold and predictions as BRAT in the input layout of MEDDOCAN's official evaluation
    script (scripts/CODALAB-Evaluation-script/ in PlanTL-GOB-ES/SPACCC_MEDDOCAN):
    FOLDER/ref/brat/ (gold) and FOLDER/res/brat/subtask1/ and subtask2/ (predictions), one
    `<id>.txt` and `<id>.ann` per document. The file name is the document's id (the script
    finds its sentence counts by it); `doc-00001` ... where ids are missing or repeat.

    gold_docs (Sequence[Doc]): gold. pred_docs (Sequence[Doc]): predictions, in the same order.
    folder (Path): where to write. RETURNS (int): documents written.
    """
    ids = [str(doc.user_data.get("id") or "") for doc in gold_docs]
    if len(set(ids)) < len(ids) or any(not doc_id or "/" in doc_id or doc_id.startswith(".") for doc_id in ids):
        ids = [f"doc-{i:05d}" for i in range(1, len(gold_docs) + 1)]
    targets = [(folder / "ref" / "brat", gold_docs)] + [
        (folder / "res" / "brat" / subtask, pred_docs) for subtask in ("subtask1", "subtask2")]
    for target, docs in targets:
        for doc_id, doc in zip(ids, docs):
            write_text(target / f"{doc_id}.txt", doc.text)
            write_text(target / f"{doc_id}.ann", brat_lines(doc))
    return len(ids)


def _three(x: float) -> str:
    return f"{x:.3f}"


def to_markdown(scores: Dict[str, Any]) -> str:
    """A summary table (measure | P | R | F), the leak score and a per-label table.

    scores (Dict[str, Any]): what `evaluate` or `score_docs` returned.
    RETURNS (str): the Markdown.
    """
    strict, token, leak = scores["ents_strict"], scores["token"], scores["leak"]
    measures = [
        ("Entities, strict (label + span; MEDDOCAN subtrack 1)", strict),
        ("Entities, strict, macro over labels", strict["macro"]),
        ("Spans, strict (label ignored; subtrack 2 strict)", scores["spans_strict"]),
        ("Spans, merged (subtrack 2 merged)", scores["spans_merged"]),
        ("Tokens (paper's measure)", token),
        ("Tokens, macro over labels", token["macro"]),
    ]
    speed = scores.get("tokens_per_second")
    token_f = {label: row["f"] for label, row in token["per_label"].items()}
    per_label = [[label, f"{row['support']:,}", _three(row["p"]), _three(row["r"]), _three(row["f"]),
                  _three(token_f.get(label, 0.0)), f"{leak['missed_per_label'].get(label, 0):,}"]
                 for label, row in strict["per_label"].items()]
    return "\n".join([
        f"Documents: {scores['n_docs']:,}, tokens: {scores['n_tokens']:,}"
        + (f", speed: {speed:,.0f} tokens/s" if speed is not None else ""),
        "",
        table(["Measure", "P", "R", "F"], [[name, _three(s["p"]), _three(s["r"]), _three(s["f"])]
                                           for name, s in measures], "lrrr"),
        f"Leak score (MEDDOCAN): {leak['leak_score']:.4f} gold entities not found exactly per sentence "
        f"({leak['fn']:,} of {leak['gold_entities']:,} not found exactly, {leak['missed']:,} missed "
        f"entirely, {leak['sentences']:,} sentences).",
        "",
        table(["Label", "Support", "Strict P", "Strict R", "Strict F", "Token F", "Missed"], per_label, "lrrrrrr"),
    ])
