"""What the synthetic notes give away about the real ones they were adapted to.

Three figures, all from counts (no text is printed or written unless `--show-strings`):

* n-gram recall (the paper's privacy measure): the share of the real corpus's distinct word
  n-grams (n = 5) that occur anywhere in the synthetic text; and the reverse, the share of
  the synthetic text's distinct n-grams that are copied from the real text.
* verbatim PHI reproduction: of the distinct PHI strings annotated in the real corpus, per
  label, how many occur in the synthetic text and in how many synthetic notes. A string
  annotated in many real notes ("Madrid", "varón") identifies no one, so the figures are
  also given for the *identifying* strings: those annotated in at most `max_gold_docs`
  real documents (default 1). Strings shorter than `min_chars` or without a letter or
  digit are not counted at all.
* a filter that drops the synthetic notes that reproduce an identifying PHI string or share
  a run of at least `max_shared_ngram` words (default 20) with a real note.
* with `--dev` (the split the prompts came from), every real split the run touched is
  counted: the figures above against the dev split and against train + dev (`splits`), the
  filter against both, and `prompt_phi`: the prompts (and the samples' opening words) that
  contain a PHI string of their own dev note, matched as whole words regardless of case and
  accents. That count must be 0 (generate replaces the prompt's PHI with surrogates).

The figures at the top level of the JSON (`ngram`, `phi`, `real_documents`, ...) are those
against the training side (the adaptation notes), as before; `splits` holds `train`, `dev`
and `union`. In `dev` and `union`, a string is identifying when annotated in at most
`max_gold_docs` documents of train + dev together.

Words are the lower-cased runs of letters, digits and underscores (`\\w+`): whitespace and
punctuation separate words and are not words. An n-gram never spans two documents.

N-grams are hashed, not stored: each word gets a 64-bit id (blake2b, 8 bytes), an n-gram
the polynomial sum of its word ids (mod 2^64), computed over all positions at once with
numpy; distinct n-grams are a sorted uint64 array (8 bytes each). A false match between two
different n-grams has a probability of about 2^-60 per pair, so the figures are exact in
practice (tests/test_privacy.py checks them against plain sets of word tuples).

PHI strings are matched verbatim (case-sensitive unless `ignore_case`, whitespace runs
treated as one space) at word boundaries: "Ana" does not match inside "Ana" + "lía".

    python -m deid_synthesis.privacy synthetic.jsonl corpus/x/train.spacy --dev corpus/x/dev.spacy \\
        --output metrics/x/privacy.json --filter-output synthetic.kept.jsonl --max-shared-ngram 20

Only the prompt check, on any run (exits 1 when a prompt holds PHI of its dev note):

    python -m deid_synthesis.privacy prompts synthetic/x/run/samples.jsonl corpus/x/dev.spacy
"""
import hashlib
import re
import sys
from array import array
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import srsly
import typer
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from wasabi import msg

from deid_synthesis.annotate import read_synthetic, read_synthetic_lines
from deid_synthesis.corpus_readers import CorpusError
from clinical_deid.transform import fold  # the folding propagation and residual_phi match with

WORD = re.compile(r"\w+")
# Odd multiplier of the polynomial n-gram hash (the 64-bit golden ratio constant).
_P = np.uint64(0x9E3779B97F4A7C15)


def words(text: str) -> List[str]:
    """The words of a text as the n-gram measures see them: lower-cased `\\w+` runs."""
    return WORD.findall(text.lower())


# ---------------------------------------------------------------------------
# Hashed n-grams
# ---------------------------------------------------------------------------


def _word_ids(texts: Iterable[str]):
    """Word ids (uint64) of all texts in a row, and the number of words per text."""
    index: Dict[str, int] = {}
    flat, lengths = array("q"), array("q")
    for text in texts:
        ws = words(text)
        flat.extend([index.setdefault(w, len(index)) for w in ws])
        lengths.append(len(ws))
    digests = np.array([int.from_bytes(hashlib.blake2b(w.encode("utf8"), digest_size=8).digest(), "little")
                        for w in index], dtype=np.uint64)
    ids = digests[np.frombuffer(flat, dtype=np.int64)] if len(flat) else np.zeros(0, dtype=np.uint64)
    return ids, np.frombuffer(lengths, dtype=np.int64)


def ngram_hashes(texts: Iterable[str], n: int):
    """Hash of every word n-gram of every text (none across texts), and the text of each.

    Returns (hashes, text_index), two arrays of equal length, in text order.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    ids, lengths = _word_ids(texts)
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    hashes = ids[:m].copy()
    power = np.uint64(1)
    with np.errstate(over="ignore"):
        for k in range(1, n):
            power = power * _P
            hashes += ids[k:k + m] * power
    valid = doc_of[:m] == doc_of[n - 1:n - 1 + m]
    return hashes[valid], doc_of[:m][valid]


def distinct_ngrams(texts: Iterable[str], n: int) -> np.ndarray:
    """Sorted array of the distinct n-gram hashes of the texts."""
    return np.unique(ngram_hashes(texts, n)[0])


def ngram_recall(real_texts: Iterable[str], synth_texts: Iterable[str], n: int = 5) -> Dict:
    """Share of the real text's distinct n-grams found in the synthetic text, and the reverse.

    recall     shared / real distinct n-grams (the paper's "5-gram recall")
    copy_rate  shared / synthetic distinct n-grams (how much of the synthetic text is copied)
    """
    real, synth = distinct_ngrams(real_texts, n), distinct_ngrams(synth_texts, n)
    shared = int(np.intersect1d(real, synth, assume_unique=True).size)
    return {"n": n, "real_ngrams": int(real.size), "synthetic_ngrams": int(synth.size), "shared_ngrams": shared,
            "recall": shared / real.size if real.size else 0.0,
            "copy_rate": shared / synth.size if synth.size else 0.0}


# ---------------------------------------------------------------------------
# Verbatim PHI strings
# ---------------------------------------------------------------------------


def _normalise(text: str, ignore_case: bool) -> str:
    text = " ".join(text.split())
    return text.lower() if ignore_case else text


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class PhiIndex:
    """The distinct PHI strings of gold Docs, and a word-boundary search for them in a text.

    Strings are indexed by their first word: a text is scanned word by word and only the
    strings starting with that word are compared, so thousands of strings cost about as
    much as one pass over the text.
    """

    def __init__(self, gold_docs: Iterable[Doc], min_chars: int = 3, max_gold_docs: Optional[int] = 1,
                 ignore_case: bool = False, labels: Optional[Sequence[str]] = None,
                 frequency_docs: Optional[Iterable[Doc]] = None):
        """`frequency_docs`: where to count in how many documents a string is annotated
        (default: `gold_docs`; pass the whole gold file when `gold_docs` is a small part of it)."""
        self.ignore_case, self.min_chars, self.max_gold_docs = ignore_case, min_chars, max_gold_docs
        self.skipped: Counter = Counter()
        docs_of = self._annotated(gold_docs, labels, self.skipped)  # (label, string) -> gold documents
        self.strings: List[str] = sorted({s for _, s in docs_of})
        sid = {s: i for i, s in enumerate(self.strings)}
        self.by_label: Dict[str, Set[int]] = defaultdict(set)
        for label, string in docs_of:
            self.by_label[label].add(sid[string])
        if frequency_docs is not None:
            docs_of = self._annotated(frequency_docs, labels, Counter())
        sources_of: Dict[int, Set[str]] = defaultdict(set)  # under any label
        for (label, string), sources in docs_of.items():
            if string in sid:
                sources_of[sid[string]] |= sources
        self.doc_frequency = {i: len(sources_of[i]) for i in range(len(self.strings))}
        # Identifying: annotated in few gold documents (whatever the label).
        self.identifying: Set[int] = {i for i, k in self.doc_frequency.items()
                                      if max_gold_docs is None or k <= max_gold_docs}
        self._first: Dict[str, List[tuple]] = defaultdict(list)
        for i, string in enumerate(self.strings):
            first = WORD.search(string)
            self._first[first.group()].append((first.start(), string, i))

    def _annotated(self, docs: Iterable[Doc], labels, skipped: Counter) -> Dict[tuple, Set[str]]:
        docs_of: Dict[tuple, Set[str]] = defaultdict(set)
        for i, doc in enumerate(docs):
            # Chunks of one document count as one document.
            source = str(doc.user_data.get("source_id") or doc.user_data.get("id") or i)
            for ent in doc.ents:
                if labels and ent.label_ not in labels:
                    continue
                string = _normalise(ent.text, self.ignore_case)
                if len(string) < self.min_chars or not any(ch.isalnum() for ch in string):
                    skipped[ent.label_] += 1
                    continue
                docs_of[(ent.label_, string)].add(source)
        return docs_of

    def find(self, text: str) -> Set[int]:
        """Indices (into `self.strings`) of the strings that occur in the text."""
        text = _normalise(text, self.ignore_case)
        found = set()
        for match in WORD.finditer(text):
            for offset, string, i in self._first.get(match.group(), ()):
                start, end = match.start() - offset, match.start() - offset + len(string)
                if i in found or start < 0 or not text.startswith(string, start):
                    continue
                if _is_word_char(string[0]) and start > 0 and _is_word_char(text[start - 1]):
                    continue
                if _is_word_char(string[-1]) and end < len(text) and _is_word_char(text[end]):
                    continue
                found.add(i)
        return found


def phi_reproduction(gold_docs: Iterable[Doc], synth_texts: Iterable[str], min_chars: int = 3,
                     max_gold_docs: Optional[int] = 1, ignore_case: bool = False,
                     labels: Optional[Sequence[str]] = None, show_strings: bool = False,
                     index: Optional[PhiIndex] = None) -> Dict:
    """Distinct gold PHI strings found verbatim in the synthetic text, per label and in total.

    Per label: `strings` (distinct strings considered), `reproduced` (of those, found in the
    synthetic text), `synthetic_docs` (synthetic notes containing at least one), and the same
    three for the identifying strings (`identifying_*`: annotated in at most
    `max_gold_docs` gold documents). The strings themselves only with `show_strings`.
    """
    index = index or PhiIndex(gold_docs, min_chars, max_gold_docs, ignore_case, labels)
    hits: Counter = Counter()  # string index -> synthetic notes containing it
    docs_with: List[Set[int]] = []
    n_synth = 0
    for text in synth_texts:
        n_synth += 1
        found = index.find(text)
        hits.update(found)
        if found:
            docs_with.append(found)

    def figures(ids: Set[int]) -> Dict:
        ident = ids & index.identifying
        row = {"strings": len(ids), "reproduced": sum(1 for i in ids if hits[i]),
               "synthetic_docs": sum(1 for found in docs_with if found & ids),
               "identifying_strings": len(ident), "identifying_reproduced": sum(1 for i in ident if hits[i]),
               "identifying_synthetic_docs": sum(1 for found in docs_with if found & ident)}
        if show_strings:
            row["reproduced_strings"] = sorted(index.strings[i] for i in ids if hits[i])
        return row

    per_label = {label: figures(ids) for label, ids in sorted(index.by_label.items(), key=lambda kv: -len(kv[1]))}
    return {"synthetic_documents": n_synth, "min_chars": index.min_chars, "max_gold_docs": index.max_gold_docs,
            "ignore_case": index.ignore_case, "skipped_short": sum(index.skipped.values()),
            "per_label": per_label, "total": figures(set(range(len(index.strings))))}


# ---------------------------------------------------------------------------
# PHI of a prompt's own dev note
# ---------------------------------------------------------------------------


def folded_words(text: str) -> List[Tuple[str, int, int]]:
    """(folded word, start, end) of each `\\w+` run of the text: whole words, offsets kept."""
    return [(fold(m.group()), m.start(), m.end()) for m in WORD.finditer(text)]


def phi_word_runs(doc: Doc, min_chars: int = 1) -> Dict[Tuple[str, ...], Set[str]]:
    """The folded word runs of a document's annotated strings, with their labels.

    Every annotated string with a word counts (`min_chars` 1): in its own note even "45" or
    a one-letter initial is that patient's."""
    runs: Dict[Tuple[str, ...], Set[str]] = defaultdict(set)
    for ent in doc.ents:
        run = tuple(w for w, _, _ in folded_words(ent.text))
        if run and len(ent.text.strip()) >= min_chars:
            runs[run].add(ent.label_)
    return dict(runs)


def find_phi_runs(text: str, runs: Dict[Tuple[str, ...], Set[str]]) -> List[Tuple[int, int, Tuple[str, ...]]]:
    """(start, end, run) wherever one of `runs` occurs in the text as whole words."""
    found: List[Tuple[int, int, Tuple[str, ...]]] = []
    if not runs:
        return found
    ws = folded_words(text)
    by_first: Dict[str, List[Tuple[str, ...]]] = defaultdict(list)
    for run in runs:
        by_first[run[0]].append(run)
    for i, (word, start, _) in enumerate(ws):
        for run in by_first.get(word, ()):
            if i + len(run) <= len(ws) and all(ws[i + k][0] == run[k] for k in range(len(run))):
                found.append((start, ws[i + len(run) - 1][2], run))
    return found


def find_own_phi(text: str, runs: Dict[Tuple[str, ...], Set[str]]) -> List[Tuple[int, int, Tuple[str, ...]]]:
    """`find_phi_runs`, plus a string cut off by the end of the text (a prompt ending in "Nombre:
    José" of "José Luis García"): the text's last words are the first words of the string, at
    least 3 characters of them."""
    found = find_phi_runs(text, runs)
    ws = folded_words(text)
    for run in runs:
        for k in range(min(len(run) - 1, len(ws)), 0, -1):
            tail = ws[len(ws) - k:]
            if tuple(w for w, _, _ in tail) == run[:k] and tail[-1][2] - tail[0][1] >= 3:
                found.append((tail[0][1], tail[-1][2], run))
                break
    return found


def opening(text: str, n_words: int) -> str:
    """The text up to the end of its n-th whitespace-separated word (as generate cuts prompts)."""
    ws = list(re.finditer(r"\S+", text))[:n_words]
    return text[ws[0].start(): ws[-1].end()] if ws else ""


def doc_id(doc: Doc, i: int) -> str:
    """A dev document's id as generate names its prompt (the position when it has none)."""
    return str(doc.user_data.get("id", i))


def prompt_phi(records: Iterable[dict], dev_docs: Sequence[Doc], prompt_words: int = 3,
               min_chars: int = 1) -> Dict:
    """How many prompts, and samples' openings, hold a PHI string of their own dev note.

    A record's dev note is the one whose id is its `prompt_id`; its opening is as many words
    of its text as its prompt has (`prompt_words` when it has none): a sample starts with
    its prompt, so this also catches a prompt field that was changed afterwards. A string
    cut off by the end of the prompt counts too (`find_own_phi`). Counts only, per label
    of the strings found; never the strings.
    """
    own = {doc_id(doc, i): phi_word_runs(doc, min_chars) for i, doc in enumerate(dev_docs)}
    prompts: Dict[str, str] = {}
    samples = openings_with = no_prompt_id = unknown = 0
    for record in records:
        pid = record.get("prompt_id")
        if pid is None:
            no_prompt_id += 1
            continue
        if str(pid) not in own:
            unknown += 1
            continue
        pid, prompt = str(pid), record.get("prompt")
        if isinstance(prompt, str):
            prompts.setdefault(pid, prompt)
        n = len(prompt.split()) if isinstance(prompt, str) and prompt.split() else prompt_words
        samples += 1
        openings_with += bool(find_own_phi(opening(record["text"], n), own[pid]))
    per_label: Counter = Counter()
    with_phi = 0
    for pid, prompt in prompts.items():
        found = find_own_phi(prompt, own[pid])
        with_phi += bool(found)
        per_label.update({label for _, _, run in found for label in own[pid][run]})
    return {"prompts": len(prompts), "prompts_with_own_phi": with_phi, "per_label": dict(per_label.most_common()),
            "samples": samples, "sample_openings_with_own_phi": openings_with,
            "samples_without_prompt_id": no_prompt_id, "samples_with_unknown_prompt_id": unknown,
            "dev_documents": len(own), "min_chars": min_chars, "matched": "whole words, case and accents ignored"}


# ---------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------


def filter_synthetic(synth_jsonl: Path, gold_docs: Sequence[Doc], real_texts: Iterable[str],
                     output_jsonl: Optional[Path] = None, max_shared_ngram: Optional[int] = 20,
                     drop_phi: bool = True, min_chars: int = 3, max_gold_docs: Optional[int] = 1,
                     ignore_case: bool = False, labels: Optional[Sequence[str]] = None,
                     index: Optional[PhiIndex] = None) -> Dict:
    """Drop synthetic notes that reproduce an identifying gold PHI string (`drop_phi`) or share
    a run of `max_shared_ngram` or more words with a real note; copy the lines of the others,
    unchanged, to `output_jsonl` (None: only count).

    Returns the counts: documents, kept, dropped, and dropped per reason (a note can be
    dropped for both, so the reasons can add up to more than `dropped`).
    """
    synth_jsonl = Path(synth_jsonl)
    lines, texts = [], []
    for _, line, record in read_synthetic_lines(synth_jsonl):
        lines.append(line if line.endswith("\n") else line + "\n")
        texts.append(record["text"])
    drop_reasons: List[Set[str]] = [set() for _ in texts]
    if drop_phi:
        index = index or PhiIndex(gold_docs, min_chars, max_gold_docs, ignore_case, labels)
        for reasons, text in zip(drop_reasons, texts):
            if index.find(text) & index.identifying:
                reasons.add("phi")
    if max_shared_ngram:
        real = distinct_ngrams(real_texts, max_shared_ngram)
        hashes, doc_of = ngram_hashes(texts, max_shared_ngram)
        for i in np.unique(doc_of[np.isin(hashes, real)]):
            drop_reasons[i].add("shared_run")
    kept = [line for line, reasons in zip(lines, drop_reasons) if not reasons]
    if output_jsonl is not None:
        output_jsonl = Path(output_jsonl)
        output_jsonl.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = output_jsonl.with_name(output_jsonl.name + ".tmp")
        tmp_path.write_text("".join(kept), encoding="utf8")
        tmp_path.replace(output_jsonl)
    reasons = Counter(r for rs in drop_reasons for r in rs)
    return {"documents": len(lines), "kept": len(kept), "dropped": len(lines) - len(kept),
            "dropped_phi": reasons["phi"], "dropped_shared_run": reasons["shared_run"],
            "drop_phi": drop_phi, "max_shared_ngram": max_shared_ngram,
            "output": str(output_jsonl) if output_jsonl is not None else None}


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def read_gold(path: Path, split: str = "train") -> List[Doc]:
    """The gold Docs of one real split, each tagged with its split (see `tag_sources`)."""
    what = "the adaptation corpus" if split == "train" else f"the {split} split"
    if not Path(path).is_file():
        raise CorpusError(f"{path}: no such file (expected the gold DocBin of {what})")
    return tag_sources(list(DocBin().from_disk(path).get_docs(Vocab())), split)


def tag_sources(docs: List[Doc], split: str) -> List[Doc]:
    """Prefix each document's source id with its split, so that when strings are counted over
    several splits, two files' positional ids ("0", "1") do not merge into one document."""
    for i, doc in enumerate(docs):
        source = doc.user_data.get("source_id") or doc.user_data.get("id") or i
        doc.user_data["source_id"] = f"{split}/{source}"
    return docs


def adaptation_docs(gold_docs: List[Doc], manifest_path: Path) -> tuple:
    """The gold documents an adapter was trained on, chosen as `deid_synthesis.adapt` chose them.

    Reads the fraction and seed from the adapter's manifest.json and checks the documents'
    hash against it. A fraction of 0 (no adaptation) gives all the gold documents: the
    figures are then the chance overlap of the base model with the real text.
    """
    from deid_synthesis.adapt import documents_hash, select_documents  # imports torch: only when asked

    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        manifest_path = manifest_path / "manifest.json"
    if not manifest_path.is_file():
        raise CorpusError(f"{manifest_path}: no such file (expected the adapter's manifest.json)")
    manifest = srsly.read_json(manifest_path)
    fraction, seed = manifest["fraction"], manifest["hyperparameters"]["seed"]
    info = {"manifest": str(manifest_path), "fraction": fraction, "seed": seed}
    if fraction == 0:
        return gold_docs, {**info, "documents": 0, "measured_against": "all gold documents (no adaptation)"}
    indices = select_documents(len(gold_docs), fraction, seed)
    chosen = [gold_docs[i] for i in indices]
    ids = [str(gold_docs[i].user_data.get("id", i)) for i in indices]
    if documents_hash(ids) != manifest["documents_hash"]:
        raise CorpusError(f"{manifest_path}: the adapter was trained on other documents than this gold file's "
                          f"{fraction:.0%} (documents_hash differs): pass the training DocBin it was adapted on")
    return chosen, {**info, "documents": len(chosen), "measured_against": "adaptation documents"}


def split_figures(real_docs: Sequence[Doc], synth_texts: Sequence[str], n: int, index: PhiIndex,
                  show_strings: bool = False) -> Dict:
    """N-gram recall and verbatim PHI reproduction of the synthetic text against one real split."""
    real_texts = [doc.text for doc in real_docs]
    return {"documents": len(real_texts), "words": sum(len(words(t)) for t in real_texts),
            "ngram": ngram_recall(real_texts, synth_texts, n),
            "phi": phi_reproduction(real_docs, synth_texts, show_strings=show_strings, index=index)}


def privacy_report(synth_jsonl: Path, gold_path: Path, n: int = 5, filter_output: Optional[Path] = None,
                   max_shared_ngram: int = 20, drop_phi: bool = True, min_chars: int = 3,
                   max_gold_docs: Optional[int] = 1, ignore_case: bool = False,
                   labels: Optional[Sequence[str]] = None, show_strings: bool = False,
                   adapter_manifest: Optional[Path] = None, dev_path: Optional[Path] = None,
                   prompt_words: int = 3) -> Dict:
    """All three figures; the filter only counts unless `filter_output` is given.

    With `adapter_manifest`, the real side is the part of the gold file the generator was
    adapted on (the paper's "adaptation corpus"); without, the whole gold file. With
    `dev_path` (the prompts' split), the figures against dev and train + dev too (`splits`),
    the filter against both, and the prompts' own-note PHI (`prompt_phi`).
    """
    all_docs = gold_docs = read_gold(gold_path)
    adaptation = None
    if adapter_manifest is not None:
        gold_docs, adaptation = adaptation_docs(all_docs, adapter_manifest)
    real_texts = [doc.text for doc in gold_docs]
    records = [record for _, record in read_synthetic(synth_jsonl)]
    synth_texts = [record["text"] for record in records]
    index = PhiIndex(gold_docs, min_chars, max_gold_docs, ignore_case, labels, frequency_docs=all_docs)
    report = {
        "synthetic": str(synth_jsonl), "gold": str(gold_path), "dev": str(dev_path) if dev_path else None,
        "adaptation": adaptation,
        "real_documents": len(real_texts), "real_words": sum(len(words(t)) for t in real_texts),
        "synthetic_documents": len(synth_texts), "synthetic_words": sum(len(words(t)) for t in synth_texts),
        "ngram": ngram_recall(real_texts, synth_texts, n),
        "phi": phi_reproduction(gold_docs, synth_texts, show_strings=show_strings, index=index),
    }
    if dev_path is None:
        report["filter"] = filter_synthetic(synth_jsonl, gold_docs, real_texts, filter_output, max_shared_ngram,
                                            drop_phi, index=index)
        return report
    dev_docs = read_gold(dev_path, "dev")
    every_doc, union_docs = all_docs + dev_docs, list(gold_docs) + dev_docs
    settings = (min_chars, max_gold_docs, ignore_case, labels)
    union_index = PhiIndex(union_docs, *settings, frequency_docs=every_doc)
    report["splits"] = {
        "train": {"documents": report["real_documents"], "words": report["real_words"], "ngram": report["ngram"],
                  "phi": report["phi"]},
        "dev": split_figures(dev_docs, synth_texts, n, PhiIndex(dev_docs, *settings, frequency_docs=every_doc),
                             show_strings),
        "union": split_figures(union_docs, synth_texts, n, union_index, show_strings),
    }
    report["filter"] = {**filter_synthetic(synth_jsonl, union_docs, [doc.text for doc in union_docs], filter_output,
                                           max_shared_ngram, drop_phi, index=union_index),
                        "against": ["train", "dev"]}
    report["prompt_phi"] = prompt_phi(records, dev_docs, prompt_words)
    return report


def prompt_phi_line(figures: Dict) -> str:
    """The prompt check in one line, as `privacy` and `privacy prompts` print it."""
    return (f"prompts with PHI of their dev note: {figures['prompts_with_own_phi']:,} of {figures['prompts']:,}; "
            f"samples whose opening holds PHI of their dev note: {figures['sample_openings_with_own_phi']:,} of "
            f"{figures['samples']:,}")


def print_report(report: Dict, show_strings: bool = False) -> None:
    ng, phi, filt = report["ngram"], report["phi"], report["filter"]
    msg.divider(f"Privacy of {report['synthetic']} against {report['gold']}")
    if report["adaptation"]:
        a = report["adaptation"]
        msg.info(f"Real side: {a['measured_against']} (fraction {a['fraction']}, seed {a['seed']})")
    msg.info(f"Real: {report['real_documents']:,} docs, {report['real_words']:,} words; synthetic: "
             f"{report['synthetic_documents']:,} docs, {report['synthetic_words']:,} words")
    msg.text(f"{ng['n']}-gram recall (share of the real text's {ng['real_ngrams']:,} distinct {ng['n']}-grams "
             f"found in the synthetic text): {ng['recall']:.3f}")
    msg.text(f"Copy rate (share of the synthetic text's {ng['synthetic_ngrams']:,} distinct {ng['n']}-grams "
             f"found in the real text): {ng['copy_rate']:.3f}")
    header = ["label", "strings", "reproduced", "synth docs", "identifying", "reproduced", "synth docs"]
    rows = [[label, r["strings"], r["reproduced"], r["synthetic_docs"], r["identifying_strings"],
             r["identifying_reproduced"], r["identifying_synthetic_docs"]]
            for label, r in [*phi["per_label"].items(), ("total", phi["total"])]]
    msg.info(f"Gold PHI strings found verbatim in the synthetic text (≥ {phi['min_chars']} characters; "
             f"identifying: annotated in ≤ {phi['max_gold_docs']} gold documents)")
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * 6)
    if show_strings:
        for label, r in phi["per_label"].items():
            if r.get("reproduced_strings"):
                msg.text(f"{label}: {' | '.join(r['reproduced_strings'])}")
    if report.get("splits"):
        msg.info("Against every real split the run touched (identifying in dev and train + dev: annotated in "
                 f"≤ {phi['max_gold_docs']} documents of both)")
        msg.table([[split, f["documents"], f"{f['ngram']['recall']:.4f}", f["phi"]["total"]["identifying_strings"],
                    f["phi"]["total"]["identifying_reproduced"], f["phi"]["total"]["identifying_synthetic_docs"]]
                   for split, f in report["splits"].items()],
                  header=["split", "docs", f"{ng['n']}-gram recall", "identifying", "reproduced", "synth docs"],
                  divider=True, aligns=["l"] + ["r"] * 5)
    if report.get("prompt_phi"):
        print_prompt_phi(report["prompt_phi"])
    reasons = f"{filt['dropped_phi']:,} for an identifying PHI string" if filt["drop_phi"] else "PHI not checked"
    if filt["max_shared_ngram"]:
        reasons += f", {filt['dropped_shared_run']:,} for a run of ≥ {filt['max_shared_ngram']} words shared with a real note"
    verb = "Dropped" if filt["output"] else "Would drop"
    msg.info(f"Filter: {verb} {filt['dropped']:,} of {filt['documents']:,} synthetic notes ({reasons})")
    if filt["output"]:
        msg.good(f"Kept {filt['kept']:,} notes → {filt['output']}")


def print_prompt_phi(figures: Dict) -> None:
    """The prompt check: good when no prompt or opening holds PHI of its own dev note."""
    line = prompt_phi_line(figures)
    line = line[0].upper() + line[1:]
    if figures["prompts_with_own_phi"] or figures["sample_openings_with_own_phi"]:
        msg.fail(f"{line} (prompts per label: {figures['per_label']})")
    else:
        msg.good(line)
    if figures["samples_without_prompt_id"] or figures["samples_with_unknown_prompt_id"]:
        msg.warn(f"{figures['samples_without_prompt_id']:,} samples without a prompt_id and "
                 f"{figures['samples_with_unknown_prompt_id']:,} with one not in the dev split were not checked")


def check_prompts(synth_jsonl: Path, dev_path: Path, prompt_words: int = 3) -> Dict:
    """Only the prompt check of a produced run (`prompt_phi` against the dev DocBin)."""
    records = (record for _, record in read_synthetic(synth_jsonl))
    return {"synthetic": str(synth_jsonl), "dev": str(dev_path),
            **prompt_phi(records, read_gold(dev_path, "dev"), prompt_words)}


def prompts_main(
    synth_jsonl: Path = typer.Argument(..., help="Synthetic notes (the generator's JSONL, or a -pseudo run's)"),
    dev_path: Path = typer.Argument(..., help="Gold dev DocBin the prompts were taken from"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Opening words checked in a sample without a prompt field"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the counts as JSON here"),
):
    """Count the prompts and sample openings holding a PHI string of their own dev note; exit 1 if any."""
    try:
        figures = check_prompts(synth_jsonl, dev_path, prompt_words)
    except (CorpusError, ValueError) as err:
        msg.fail(str(err), exits=1)
    print_prompt_phi(figures)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, figures)
    if figures["prompts_with_own_phi"] or figures["sample_openings_with_own_phi"]:
        raise typer.Exit(1)


def main(
    synth_jsonl: Path = typer.Argument(..., help="Synthetic notes (the generator's JSONL)"),
    gold_path: Path = typer.Argument(..., help="Gold DocBin of the adaptation corpus (its text and PHI spans)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the figures as JSON here"),
    n: int = typer.Option(5, "--n", help="n of the n-gram recall (the paper: 5)"),
    filter_output: Optional[Path] = typer.Option(None, "--filter-output", help="Write the notes that pass the filter here (JSONL)"),
    max_shared_ngram: int = typer.Option(20, "--max-shared-ngram", help="Drop notes sharing a run of this many words with a real note (0: off)"),
    no_drop_phi: bool = typer.Option(False, "--no-drop-phi", help="Do not drop notes for reproducing a PHI string"),
    min_chars: int = typer.Option(3, "--min-chars", help="Ignore PHI strings shorter than this"),
    max_gold_docs: int = typer.Option(1, "--max-gold-docs", help="A PHI string is identifying when annotated in at most this many gold documents (0: all are)"),
    ignore_case: bool = typer.Option(False, "--ignore-case", help="Match PHI strings regardless of case"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated PHI labels to check (default: all)"),
    show_strings: bool = typer.Option(False, "--show-strings", help="Print and save the reproduced PHI strings (private!)"),
    adapter_manifest: Optional[Path] = typer.Option(None, "--adapter-manifest", help="The adapter's manifest.json (or folder): measure against the documents it was adapted on"),
    dev_path: Optional[Path] = typer.Option(None, "--dev", help="Gold dev DocBin (the prompts' split): count it too, and the prompts' own-note PHI"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Opening words checked in a sample without a prompt field"),
):
    """N-gram recall, verbatim PHI reproduction and an optional filter of synthetic notes."""
    try:
        report = privacy_report(synth_jsonl, gold_path, n, filter_output, max_shared_ngram, not no_drop_phi,
                                min_chars, max_gold_docs or None, ignore_case,
                                labels.split(",") if labels else None, show_strings, adapter_manifest,
                                dev_path, prompt_words)
    except (CorpusError, ValueError) as err:
        msg.fail(str(err), exits=1)
    print_report(report, show_strings)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, report)
        msg.good(f"Saved privacy figures → {output}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["prompts"]:  # python -m deid_synthesis.privacy prompts SAMPLES DEV
        sys.argv.pop(1)
        typer.run(prompts_main)
    else:
        typer.run(main)
