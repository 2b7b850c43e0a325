"""The shareable bundle of a synthetic run, built only when its privacy figures pass a gate.

What a data protection officer signs off is a folder: the pseudonymized corpus (DocBin and
JSONL), a datasheet (how it was made, every privacy figure beside its threshold, licences,
what the figures cannot show) and SHA256SUMS. The figures that concern the text itself are
measured here, on exactly the texts written into the bundle (verbatim identifying PHI of the
real splits, record linkage, 5-gram recall against the real notes), with the real corpus
held in memory only; the adapter's membership inference AUC is read from its
`privacy-membership` file, and the canary table, when there is one, is copied into the datasheet.

A failed check refuses the build (`ReleaseRefused`, naming the checks, never a string) unless
`force`; a forced bundle's datasheet says, first, which checks failed. Nothing real goes in:
no real note, no PHI string, no prompt, no real note id (synthetic notes are renumbered and keep
only their text and entities), no canary list.
"""
import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import srsly
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from clinical_deid.io import atomic_open, read_docbin, read_jsonl, write_docbin, write_jsonl
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.privacy.linkage import record_linkage
from deid_synthesis.privacy.ngrams import ngram_recall
from deid_synthesis.privacy.phi import PhiIndex, phi_reproduction
from deid_synthesis.privacy.sources import read_gold

PARTS = ("train.spacy", "dev.spacy")
# Checks of the gate: (name, figure key, threshold key, what it is).
CHECKS = (
    ("membership", "mia_auc", "max_mia_auc", "membership inference ROC AUC on the adapter (0.5 = guessing)"),
    ("linkage", "linked_notes", "max_linkage", "synthetic notes holding 2+ identifying PHI strings of one real note"),
    ("verbatim", "verbatim_identifying_phi", "max_verbatim", "identifying real PHI strings found verbatim in the bundle"),
    ("ngram", "ngram_recall", "max_ngram_recall", "5-gram recall of the real notes (train + dev) in the bundle"),
)
LIMITS = """\
- The figures measure this corpus against the real splits named above through their gold
  annotations: PHI that the gold annotation of a real note missed is not counted anywhere.
- "Identifying" means annotated in at most one real note; common values (a big city, a
  country) are not counted and may stay.
- Verbatim means case-sensitive whole words; other forms (case, accents, spacing, one word of
  a name) are counted as near-verbatim and partial forms in the pseudonymization figures, not
  gated.
- Membership inference was run on a sample of notes with one attack (a reference model); a
  stronger attacker may do better. An AUC near 0.5 is evidence, not proof, that the adapter
  does not single out its training notes.
- Canary exposure shows where this setup starts to memorise a repeated record; the real
  notes are not canaries, and a real record repeated as often would be as exposed.
- The synthetic notes are written by a language model adapted on real notes: they can hold
  real facts that are not PHI (a rare diagnosis with a date) that none of these measures
  looks for.
"""


class ReleaseRefused(Exception):
    """The run failed a check of the gate (the message names the checks and figures, no text)."""


@dataclass
class ReleaseInputs:
    """Where a run's files are (as the project's commands write them)."""

    corpus_dir: Path  # synthetic-<run>: train.spacy, dev.spacy, annotate.json
    notes: Path  # synthetic/<dataset>/<run>/samples.jsonl
    gold: Sequence[Path]  # the real splits the run touched (train, dev)
    membership: Optional[Path] = None  # metrics/<dataset>/membership-<adapter_run>.json
    canaries: Optional[Path] = None  # metrics/<dataset>/canaries-<canary_run>.json
    generation: Optional[Path] = None  # synthetic/<dataset>/<run>/report.json
    adapter_manifest: Optional[Path] = None
    annotator_scores: Optional[Path] = None  # metrics/<dataset>/<config>.json
    synthetic_scores: Optional[Path] = None  # metrics/<dataset>/synthetic-<run>-<config>.json


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def released_docs(docs: Sequence[Doc], numbers: Dict[str, str]) -> List[Doc]:
    """The chunks as released: text, tokens and entities; user_data only the renumbered note id
    and the chunk index (no prompt, no real dev note id, no provenance)."""
    out = []
    for doc in docs:
        source = str(doc.user_data.get("source_id", doc.user_data.get("id", "")))
        note = numbers.setdefault(source, f"synthetic-{len(numbers) + 1:05d}")
        chunk = int(doc.user_data.get("chunk", 0))
        copy = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        copy.ents = [Span(copy, e.start, e.end, label=e.label_) for e in doc.ents]
        copy.user_data.update({"id": f"{note}#{chunk}", "source_id": note, "chunk": chunk})
        out.append(copy)
    return out


def released_notes(notes_path: Path, numbers: Dict[str, str]) -> List[Dict]:
    """The notes as released: the renumbered id and the text, nothing else."""
    rows = []
    for _, _, record in read_jsonl(notes_path):
        source = str(record.get("id", ""))
        note = numbers.setdefault(source, f"synthetic-{len(numbers) + 1:05d}")
        rows.append({"id": note, "text": record["text"]})
    return rows


def measure_bundle(notes: Sequence[str], chunks: Sequence[str], gold_paths: Sequence[Path],
                   max_gold_docs: int = 1) -> Dict:
    """The text figures of the bundle against the real splits (in memory): verbatim identifying PHI
    in any text it holds (distinct strings; texts holding one), and over its notes, record linkage
    and 5-gram recall."""
    splits = [read_gold(Path(path), Path(path).stem) for path in gold_paths]
    real = [doc for docs in splits for doc in docs]
    index = PhiIndex(real, max_gold_docs=max_gold_docs)
    phi = phi_reproduction(real, [*notes, *chunks], index=index)["total"]
    return {"verbatim_identifying_phi": phi["identifying_reproduced"],
            "texts_with_verbatim_identifying_phi": phi["identifying_synthetic_docs"],
            "identifying_strings_searched": phi["identifying_strings"],
            "linkage": record_linkage(index, notes),
            "ngram": ngram_recall([doc.text for doc in real], notes, 5)}


def gate(figures: Dict, thresholds: Dict) -> List[Dict]:
    """Each check: its figure, threshold and whether it passed (a figure not measured fails)."""
    rows = []
    for name, figure_key, threshold_key, what in CHECKS:
        value, limit = figures.get(figure_key), thresholds[threshold_key]
        rows.append({"check": name, "what": what, "value": value, "threshold": limit,
                     "passed": value is not None and value <= limit})
    return rows


def build_release(inputs: ReleaseInputs, output_dir: Path, thresholds: Dict, force: bool = False,
                  licences: Optional[Dict[str, str]] = None, name: str = "") -> Dict:
    """Check the run and write the bundle; ReleaseRefused (nothing written) when a check fails and not `force`.

    inputs (ReleaseInputs): the run's files. output_dir (Path): the bundle folder (replaced).
    thresholds (Dict): max_mia_auc, max_linkage, max_verbatim, max_ngram_recall.
    force (bool): build even when a check fails (the datasheet says so).
    licences (Dict[str, str]): e.g. {"data": "CC BY 4.0", "base model": "Gemma Terms of Use"}.
    RETURNS (Dict): the datasheet's data (also datasheet.json).
    """
    start = time.perf_counter()
    missing = [str(p) for p in (inputs.notes, *(Path(inputs.corpus_dir) / part for part in PARTS))
               if not Path(p).is_file()]
    if missing:
        raise CorpusError(f"{', '.join(missing)}: no such file (run pseudonymize-synthetic for this run first)")
    numbers: Dict[str, str] = {}
    vocab = Vocab()
    parts = {part: released_docs(read_docbin(Path(inputs.corpus_dir) / part, vocab), numbers) for part in PARTS}
    notes = released_notes(inputs.notes, numbers)
    measured = measure_bundle([note["text"] for note in notes], [doc.text for docs in parts.values() for doc in docs],
                              inputs.gold)
    membership = srsly.read_json(inputs.membership) if inputs.membership and Path(inputs.membership).is_file() else None
    figures = {"mia_auc": membership["auc"] if membership else None,
               "linked_notes": measured["linkage"]["linked_notes"],
               "verbatim_identifying_phi": measured["verbatim_identifying_phi"],
               "ngram_recall": round(measured["ngram"]["recall"], 4)}
    checks = gate(figures, thresholds)
    failed = [row for row in checks if not row["passed"]]
    if failed and not force:
        raise ReleaseRefused("; ".join(f"{row['check']}: {row['value']} > {row['threshold']}"
                                       if row["value"] is not None else f"{row['check']}: not measured"
                                       for row in failed) + " (release_force=1 builds it anyway, marked in the datasheet)")
    output_dir = Path(output_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    (output_dir / "corpus").mkdir(parents=True)
    for part, docs in parts.items():
        write_docbin(docs, output_dir / "corpus" / part)
    write_jsonl(notes, output_dir / "corpus" / "notes.jsonl")
    sheet = datasheet_data(inputs, checks, failed, force, measured, membership, licences or {}, name, len(notes))
    srsly.write_json(output_dir / "datasheet.json", sheet)
    with atomic_open(output_dir / "datasheet.md") as handle:
        handle.write(datasheet_markdown(sheet))
    files = sorted(p for p in output_dir.rglob("*") if p.is_file())
    with atomic_open(output_dir / "SHA256SUMS") as handle:
        handle.writelines(f"{sha256(p)}  {p.relative_to(output_dir).as_posix()}\n" for p in files)
    sheet["seconds"] = round(time.perf_counter() - start, 1)
    return sheet


def _read(path: Optional[Path]) -> Dict:
    return srsly.read_json(path) if path and Path(path).is_file() else {}


def _strict_f1(path: Optional[Path]) -> Optional[float]:
    scores = _read(path)
    return round(scores["ents_strict"]["f"], 4) if scores.get("ents_strict") else None


def datasheet_data(inputs: ReleaseInputs, checks: List[Dict], failed: List[Dict], force: bool, measured: Dict,
                   membership: Optional[Dict], licences: Dict[str, str], name: str, n_notes: int) -> Dict:
    """How the corpus was made and what was measured: settings and counts, never text."""
    manifest = _read(inputs.adapter_manifest)
    generation = _read(inputs.generation)
    annotate = _read(Path(inputs.corpus_dir) / "annotate.json")
    canaries = _read(inputs.canaries)
    pseudonymized = annotate.get("pseudonymized", {})
    return {
        "name": name, "forced": bool(failed) and force, "failed_checks": [row["check"] for row in failed],
        "checks": checks,
        "corpus": {"notes": n_notes, "chunks": annotate.get("chunks"), "words": annotate.get("words"),
                   "entities": annotate.get("entities")},
        "generator": {"base_model": manifest.get("base_model"), "adaptation_fraction": manifest.get("fraction"),
                      "adaptation_documents": manifest.get("n_documents"),
                      "hyperparameters": manifest.get("hyperparameters"),
                      "sampling": {k: rounded((generation.get("provenance") or {}).get(k))
                                   for k in ("top_p", "temperature", "max_new_tokens", "prompt_words", "prompt_phi")}},
        "annotator": {"model": str(annotate.get("model") or ""), "pipeline": (annotate.get("annotator") or {}).get("pipeline"),
                      "strict_f1_real_test": _strict_f1(inputs.annotator_scores)},
        "utility": {"synthetic_model_strict_f1_real_test": _strict_f1(inputs.synthetic_scores)},
        "pseudonymization": {k: pseudonymized.get(k) for k in ("replaced", "second_pass", "left", "key")},
        "privacy": {"membership": {k: membership.get(k) for k in ("auc", "tpr_at_low_fpr", "low_fpr", "members",
                                                                    "non_members", "attack")} if membership else None,
                    "linkage": measured["linkage"], "verbatim_identifying_phi": measured["verbatim_identifying_phi"],
                    "texts_with_verbatim_identifying_phi": measured["texts_with_verbatim_identifying_phi"],
                    "ngram_recall": measured["ngram"]["recall"],
                    "canaries": canaries.get("table"), "canary_reproduction": canaries.get("reproduction")},
        "sources": {"membership": str(inputs.membership) if inputs.membership else None,
                    "membership_sha256": sha256(inputs.membership) if membership else None,
                    "canaries": str(inputs.canaries) if canaries else None, "canary_adapter": canaries.get("adapter")},
        "licences": licences, "limits": LIMITS,
    }


def rounded(value):
    """A setting as people read it: floats to 6 significant digits (0.9500000000000001 -> 0.95)."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def settings_line(settings: Optional[Dict]) -> str:
    """{"rank": 8, ...} -> "rank 8, ..." (nested values as they are)."""
    return ", ".join(f"{k} {rounded(v)}" for k, v in (settings or {}).items()) or "not recorded"


def pseudonymization_line(pseudo: Dict) -> str:
    """The two passes and what is left, in one sentence."""
    if not pseudo.get("second_pass"):
        return f"{pseudo.get('replaced')} annotated spans replaced (no second pass recorded)"
    second, left = pseudo["second_pass"], pseudo["left"]["occurrences"]
    return (f"{pseudo['replaced']:,} annotated spans replaced by surrogates (key: {pseudo.get('key')}); second pass: "
            f"{second['replaced']:,} occurrences of real identifying strings the annotator missed replaced "
            f"({second['redacted']:,} by a placeholder); left: {left['verbatim']} verbatim, {left['near']} near-verbatim "
            f"(case, accents, spacing), {left['partial']} single words of a real name or institution")


def datasheet_markdown(sheet: Dict) -> str:
    """The datasheet for people: the gate first, then how the corpus was made, then the limits."""
    lines = [f"# Datasheet: {sheet['name'] or 'synthetic corpus'}", ""]
    if sheet["forced"]:
        lines += [f"**FORCED RELEASE: failed checks: {', '.join(sheet['failed_checks'])}.** "
                  "It was built on request despite them.", ""]
    lines += ["## Release gate", "", "| check | what | value | threshold | passed |", "|---|---|---|---|---|"]
    lines += [f"| {row['check']} | {row['what']} | {row['value']} | ≤ {row['threshold']} | "
              f"{'yes' if row['passed'] else '**no**'} |" for row in sheet["checks"]]
    generator, privacy = sheet["generator"], sheet["privacy"]
    corpus = sheet["corpus"]
    lines += ["", "## How it was made", "",
              f"- Generator: {generator['base_model']}, LoRA-adapted on {generator['adaptation_documents']} real "
              f"notes (share {generator['adaptation_fraction']}); {settings_line(generator['hyperparameters'])}",
              f"- Sampling: {settings_line(generator['sampling'])}",
              f"- Annotator: {sheet['annotator']['model']} ({', '.join(sheet['annotator']['pipeline'] or [])}; strict "
              f"F1 on the real test split: {sheet['annotator']['strict_f1_real_test']})",
              f"- Pseudonymization: {pseudonymization_line(sheet['pseudonymization'])}",
              f"- Utility: a model trained on this corpus scores strict F1 "
              f"{sheet['utility']['synthetic_model_strict_f1_real_test']} on the real test split",
              f"- Corpus: {corpus['notes']} notes, {corpus['chunks']} chunks, {corpus['words']} words, "
              f"{corpus['entities']} entities",
              "", "## Privacy figures", "",
              f"- Membership inference: {privacy['membership']}",
              f"- Record linkage: {privacy['linkage']}",
              f"- Verbatim identifying PHI: {privacy['verbatim_identifying_phi']} strings in "
              f"{privacy['texts_with_verbatim_identifying_phi']} texts (notes and chunks)",
              f"- 5-gram recall: {privacy['ngram_recall']:.4f}"]
    if privacy["canaries"]:
        lines += ["", f"Canary exposure by repetition count (bits; adapter {sheet['sources']['canary_adapter']}, "
                      "made-up records planted in its adaptation text):", "",
                  "| copies | canaries | mean exposure | max | ranked first | extracted |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['repeats']} | {r['canaries']} | {rounded(r['mean_exposure'])} | {rounded(r['max_exposure'])} | "
                  f"{r['ranked_first']} | {r['extracted']} |" for r in privacy["canaries"]]
    lines += ["", "## Licences", ""] + [f"- {what}: {licence}" for what, licence in sheet["licences"].items()]
    lines += ["", "## What these figures cannot show", "", sheet["limits"]]
    return "\n".join(lines) + "\n"
