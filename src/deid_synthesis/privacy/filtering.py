"""The filter of a synthetic corpus: drop the notes that give a real one away.

A note is dropped when it reproduces an identifying PHI string of the real corpus, or shares a
run of at least `max_shared_ngram` words (default 20; `\\w+` runs, the n-grams' unit) with a
real note. The other notes' lines are copied unchanged.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
from spacy.tokens import Doc

from clinical_deid.io import atomic_open, read_jsonl
from deid_synthesis.privacy.ngrams import distinct_ngrams, ngram_hashes
from deid_synthesis.privacy.phi import PhiIndex


def filter_synthetic(synth_jsonl: Path, gold_docs: Sequence[Doc], real_texts: Iterable[str],
                     output_jsonl: Optional[Path] = None, max_shared_ngram: Optional[int] = 20,
                     drop_phi: bool = True, min_chars: int = 3, max_gold_docs: Optional[int] = 1,
                     ignore_case: bool = False, labels: Optional[Sequence[str]] = None,
                     index: Optional[PhiIndex] = None) -> Dict:
    """Drop synthetic notes that reproduce an identifying gold PHI string (`drop_phi`) or share
    a run of `max_shared_ngram` or more words with a real note; copy the lines of the others,
    unchanged, to `output_jsonl` (None: only count).

    synth_jsonl (Path): the synthetic notes (JSONL with "text").
    gold_docs (Sequence[Doc]): the real documents (for the PHI strings, when `index` is None).
    real_texts (Iterable[str]): the real notes' texts (for the shared runs).
    output_jsonl (Optional[Path]): where to write the kept lines (written atomically).
    max_shared_ngram (Optional[int]): words of a shared run that drops a note (0 or None: off).
    drop_phi (bool): drop notes holding an identifying PHI string.
    min_chars, max_gold_docs, ignore_case, labels: as `PhiIndex` (when `index` is None).
    index (Optional[PhiIndex]): a ready index of the gold strings.
    RETURNS (Dict): documents, kept, dropped, and dropped per reason (a note can be dropped for
        both, so the reasons can add up to more than `dropped`).
    """
    lines, texts = [], []
    for _, line, record in read_jsonl(synth_jsonl):
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
        hashes, text_of = ngram_hashes(texts, max_shared_ngram)
        for i in np.unique(text_of[np.isin(hashes, real)]):
            drop_reasons[i].add("shared_run")
    kept = [line for line, reasons in zip(lines, drop_reasons) if not reasons]
    if output_jsonl is not None:
        with atomic_open(output_jsonl) as handle:
            handle.write("".join(kept))
    reasons = Counter(reason for note_reasons in drop_reasons for reason in note_reasons)
    return {"documents": len(lines), "kept": len(kept), "dropped": len(lines) - len(kept),
            "dropped_phi": reasons["phi"], "dropped_shared_run": reasons["shared_run"],
            "drop_phi": drop_phi, "max_shared_ngram": max_shared_ngram,
            "output": str(output_jsonl) if output_jsonl is not None else None}
