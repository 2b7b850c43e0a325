"""Replace the machine-annotated PHI of a synthetic corpus with surrogates, before it is shared.

The generator reproduces some real PHI strings verbatim (dates, names, towns: see the
privacy figures in the README). The annotator has labelled most of them, so the
de-identification component (`deid_transform`, pseudonymize) can replace every labelled
span of the annotated corpus with a Faker surrogate of the same kind (consistent within a
chunk, dates shifted by one offset, IDs in a valid format) and the entity labels move with
the text: the corpus trains the same way, and no longer holds the strings the annotator
found. Other mentions of a found string are replaced and labelled too (`propagate`). With
`--gold` (the real DocBins the run touched: train and dev), no surrogate may be one of the real corpus's
identifying PHI strings either (a drawn name, town or shifted date that happens to be a real
one; identifying as `privacy` counts it): those strings are read into memory for the check,
never printed or written.
Values that have no surrogate (sex, kinship words, OTROS, MISC: redacted by the product)
keep their text (`no_surrogate="keep"`), as a placeholder would be a poor training example. What the annotator missed
stays: `privacy` on the written notes measures what is left.

Surrogates are drawn with a secret key (`--key-file`, or the environment variable
DEID_SURROGATE_KEY): without one, anyone holding the released corpus and a list of candidate
patients could recompute the surrogates and test each candidate. When no key is given, a
random key is drawn for the run and stored nowhere, so the corpus's surrogates cannot be
recomputed (nor reproduced: give a key for a reproducible run).

Input: a synthetic corpus folder as `annotate` writes it (train.spacy, dev.spacy,
annotate.json). Output: the same three files in another folder (annotate.json then
describes the pseudonymized corpus, with `pseudonymized` counts), plus, with
`--samples-output`, the notes as JSONL (the chunks of a note joined in order) for
`privacy`, and a copy of the generation report beside them, so that a run named
`<run>-pseudo` goes through `privacy`, `train-synthetic`, `evaluate-synthetic` and `report`
like any other.

    python -m scripts.pseudonymize_corpus training/x/ner_cpu/model-best corpus/x/synthetic-r \\
        corpus/x/synthetic-r-pseudo --samples-output synthetic/x/r-pseudo/samples.jsonl
"""
import secrets
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import AbstractSet, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from clinical_deid.io import read_docbin, write_docbin, write_jsonl
from clinical_deid.labels import PROPAGATED_PART_KINDS
from clinical_deid.transform import DeidTransform
from deid_synthesis.annotate import compare_labels, corpus_stats
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.privacy.phi import normalise
from deid_synthesis.privacy.sources import read_gold
from deid_synthesis.privacy.verbatim import RealPhi
from deid_synthesis.span_replacement import CHUNK_JOINER, replace_spans, second_pass

# Kinds whose common values (in many real notes) stay (`common_places`).
PLACE_KINDS = ("country", "territory", "city")

PARTS = ("train.spacy", "dev.spacy")
# What a pass's Counter holds besides replacements per label.
OTHER_TALLIES = ("misaligned", "propagated", "redacted", "kept_common")


def corpus_transform(lang: str, seed: int, avoid_strings: AbstractSet[str] = frozenset(),
                     key: Optional[bytes] = None, no_surrogate: str = "keep") -> DeidTransform:
    """deid_transform for a training corpus: pseudonymize with `key`, and keep the values that
    have no surrogate (sex, kinship words, free text: a placeholder would teach nothing) unless
    `no_surrogate` is "redact" (the second pass: a real identifying string never stays)."""
    transform = DeidTransform("deid_transform", lang, mode="pseudonymize", seed=seed, rules_key="",
                              no_surrogate=no_surrogate, avoid_strings=avoid_strings)
    transform.set_key(key)
    return transform


def pseudonymize_doc(nlp: Language, transform: DeidTransform, doc: Doc,
                     keep: AbstractSet[str] = frozenset()) -> Tuple[Doc, Counter]:
    """The pseudonymized copy of `doc`: its text with surrogates, tokenized again by `nlp`,
    each replaced span an entity of the same label; user_data kept. Entities whose text
    (whitespace runs as one space) is in `keep` (common places, see `common_places`) stay as
    they are. The Counter: as `replace_spans`, plus `kept_common`."""
    kept, replaced = [], []
    for ent in doc.ents:
        (kept if normalise(ent.text, False) in keep else replaced).append(ent)
    while True:
        marked = nlp.make_doc(doc.text)
        marked.ents = [marked.char_span(ent.start_char, ent.end_char, label=ent.label_) for ent in kept]
        marked.user_data.update(doc.user_data)
        new, counts, records = replace_spans(nlp, transform, marked,
                                             [(e.start_char, e.end_char, e.label_) for e in replaced])
        # A kept place that the transform replaced as another mention of a replaced value (the
        # town of a hospital's name) is replaced as itself instead, as without `keep`.
        hit = [e for e in kept if any(r["start"] < e.end_char and e.start_char < r["end"] for r in records)]
        if not hit:
            break
        kept = [e for e in kept if e not in hit]
        replaced += hit
    counts["kept_common"] += len(kept)
    new.user_data["pseudonymized"] = True
    return new, counts


def common_places(gold_splits: Iterable[List[Doc]], min_docs: int, kind_of) -> Set[str]:
    """The place names (kinds country, territory, city) annotated in at least `min_docs` real
    documents of the splits together ("España", "Madrid"): they identify no one, and replacing
    each with one keyed surrogate across the corpus ("España" -> one drawn country everywhere)
    would teach the model the wrong country. 0: none."""
    if min_docs <= 0:
        return set()
    sources: Dict[str, Set[str]] = defaultdict(set)
    for docs in gold_splits:
        for doc in docs:
            for ent in doc.ents:
                if kind_of(ent.label_) in PLACE_KINDS:
                    sources[normalise(ent.text, False)].add(doc.user_data["source_id"])
    return {string for string, docs in sources.items() if len(docs) >= min_docs}


def notes_from_chunks(docs: Iterable[Doc]) -> List[Dict]:
    """One record per synthetic note: its chunks' texts joined in chunk order (annotate's
    user_data: source_id, chunk), with the note's provenance."""
    chunks: Dict[str, List[Tuple[int, str]]] = defaultdict(list)
    provenance: Dict[str, Dict] = {}
    for doc in docs:
        source = str(doc.user_data.get("source_id", doc.user_data.get("id", len(chunks))))
        chunks[source].append((int(doc.user_data.get("chunk", 0)), doc.text))
        provenance.setdefault(source, doc.user_data.get("provenance") or {})
    return [{"id": source, "text": CHUNK_JOINER.join(text for _, text in sorted(parts)), **provenance[source],
             "pseudonymized": True} for source, parts in chunks.items()]


def pseudonymize_parts(nlp: Language, transform: DeidTransform, input_dir: Path, progress: bool = False,
                       keep: AbstractSet[str] = frozenset()) -> Tuple[Dict[str, List[Doc]], Counter]:
    """The pseudonymized chunks of each part (train.spacy, dev.spacy), and the replacements counted."""
    counts: Counter = Counter()
    written: Dict[str, List[Doc]] = {}
    for part in PARTS:
        pseudonymized = []
        for doc in tqdm(read_docbin(input_dir / part, nlp.vocab), desc=part, unit=" chunks", disable=not progress):
            new, doc_counts = pseudonymize_doc(nlp, transform, doc, keep)
            counts.update(doc_counts)
            pseudonymized.append(new)
        written[part] = pseudonymized
    return written, counts


def check_folders(input_dir: Path, output_dir: Path) -> None:
    """CorpusError naming the folder or files when the input is not annotate's output or is the output."""
    if input_dir.resolve() == output_dir.resolve():
        raise CorpusError(f"{output_dir}: the output folder is the input folder; choose another")
    missing = [str(input_dir / part) for part in PARTS if not (input_dir / part).is_file()]
    if missing:
        raise CorpusError(f"{', '.join(missing)}: no such file (expected annotate's output)")


def corpus_figures(annotated: Dict, input_dir: Path, output_dir: Path, all_docs: List[Doc], n_notes: int) -> Dict:
    """annotate.json's figures of the pseudonymized corpus (its other fields kept)."""
    synthetic = corpus_stats(all_docs)
    synthetic["documents"] = n_notes  # notes, as annotate
    return {**annotated, "input": str(input_dir), "output": str(output_dir / PARTS[0]),
            "dev_output": str(output_dir / PARTS[1]), "chunks": len(all_docs),
            "tokens": sum(len(doc) for doc in all_docs), "words": synthetic["words"],
            "entities": synthetic["entities"], "synthetic": synthetic,
            "per_label": compare_labels(synthetic, annotated.get("gold"), ())}


def label_counts(counts: Counter) -> Dict[str, int]:
    """The replacements per label of a pass's Counter (most first), without its other tallies."""
    return dict(Counter({k: v for k, v in counts.items() if v and k not in OTHER_TALLIES}).most_common())


def left_in_notes(notes: Iterable[Dict], real: RealPhi) -> Dict:
    """What is left of the real identifying strings in the notes as released (chunks joined):
    occurrences per form (`RealPhi.near_verbatim`) and the notes holding each form; counts only."""
    occurrences: Counter = Counter(verbatim=0, near=0, partial=0)
    notes_with: Counter = Counter(verbatim=0, near=0, partial=0)
    for note in notes:
        found = real.near_verbatim(note["text"])
        occurrences.update(found)
        notes_with.update(form for form, n in found.items() if n)
    return {"occurrences": dict(occurrences), "notes": dict(notes_with)}


def write_samples(notes: List[Dict], samples_output: Path, annotated: Dict) -> None:
    """The notes as JSONL for `privacy`, and the run's generation report copied beside them."""
    samples_output = Path(samples_output)
    write_jsonl(notes, samples_output)
    generation = Path(annotated.get("input", "")).with_name("report.json") if annotated.get("input") else None
    if generation is not None and generation.is_file():
        shutil.copyfile(generation, samples_output.with_name("report.json"))


def pseudonymize_corpus(nlp: Language, input_dir: Path, output_dir: Path, seed: int = 0,
                        samples_output: Optional[Path] = None, gold_paths: Sequence[Path] = (),
                        max_gold_docs: int = 1, progress: bool = False, key: Optional[bytes] = None,
                        keep_common: int = 0) -> Dict:
    """Pseudonymize train.spacy and dev.spacy of `input_dir` into `output_dir`.

    nlp (Language): the annotator (its tokenizer re-tokenizes the surrogates).
    input_dir (Path): annotate's output folder (train.spacy, dev.spacy, annotate.json).
    output_dir (Path): the folder for the same three files, pseudonymized.
    seed (int): unused (surrogates are keyed). samples_output (Optional[Path]): the notes as JSONL.
    gold_paths (Sequence[Path]): every real split the run touched (adaptation notes, the prompts'
        dev notes): no surrogate may be one of their identifying PHI strings, and the second
        pass replaces those left.
    max_gold_docs (int): identifying: annotated in at most this many. progress (bool): bars.
    key (Optional[bytes]): the secret surrogate key; None draws a random one, kept nowhere.
    keep_common (int): keep the place names annotated in at least this many real documents of
        `gold_paths` (`common_places`; 0: replace every labelled span).
    RETURNS (Dict): the report written as annotate.json.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_folders(input_dir, output_dir)
    source_report = input_dir / "annotate.json"
    annotated = srsly.read_json(source_report) if source_report.is_file() else {}
    key_source = "given" if key is not None else "random for this run, not stored"
    key = key if key is not None else secrets.token_bytes(32)
    transform = corpus_transform(nlp.lang, seed, key=key)
    gold_splits = [read_gold(Path(path), Path(path).stem) for path in gold_paths]
    real = RealPhi(gold_splits, max_gold_docs, lambda label: transform.kind(label) in PROPAGATED_PART_KINDS)
    transform = corpus_transform(nlp.lang, seed, real.strings, key)
    # Second pass: a surrogate of the string's kind, then a placeholder for anything still found.
    last_resort = DeidTransform("deid_transform", nlp.lang, mode="redact", rules_key="")
    start = time.perf_counter()
    keep = common_places(gold_splits, keep_common, transform.kind)
    written, counts = pseudonymize_parts(nlp, transform, input_dir, progress, keep)
    second = second_pass(nlp, (corpus_transform(nlp.lang, seed, real.strings, key, no_surrogate="redact"),
                               last_resort), written, real)
    for part, docs in written.items():
        write_docbin(docs, output_dir / part)
    all_docs = [doc for docs in written.values() for doc in docs]
    notes = notes_from_chunks(all_docs)
    per_label = label_counts(counts)
    report = {
        **corpus_figures(annotated, input_dir, output_dir, all_docs, len(notes)),
        "pseudonymized": {
            "from": str(input_dir), "key": key_source, "gold_avoided": [str(path) for path in gold_paths],
            "max_gold_docs": max_gold_docs, "gold_strings_avoided": len(real), "replaced": sum(per_label.values()),
            "propagated": counts["propagated"], "misaligned": counts["misaligned"],
            "keep_common": keep_common, "common_places": len(keep), "kept_common": counts["kept_common"],
            "per_label": per_label,
            # The second pass: real identifying strings the annotator's spans did not cover.
            "second_pass": {"replaced": sum(label_counts(second).values()), "redacted": second["redacted"],
                            "misaligned": second["misaligned"], "per_label": label_counts(second)},
            "left": left_in_notes(notes, real),
            "seconds": round(time.perf_counter() - start, 2),
        },
    }
    srsly.write_json(output_dir / "annotate.json", report)
    if samples_output is not None:
        write_samples(notes, samples_output, annotated)
    return report
