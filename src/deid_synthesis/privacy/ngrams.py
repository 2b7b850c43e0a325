"""Word n-grams of real and synthetic text, hashed: the n-gram recall and the shared-run filter.

Words here are the lower-cased runs of letters, digits and underscores (`\\w+`): the unit of
the n-gram measures, chosen so that they need no tokenizer and no language. It is not the
project's count of words (`clinical_deid.tokenizer.count_words`, spaCy tokens that are neither
whitespace nor punctuation), and sizes no figure: the sizes named "words" in the privacy
report are `count_words` (`privacy.report`).
An n-gram never spans two documents.

Hand-written, and kept so (issue 11 lists it among the code measured better than the
alternatives): it takes seconds at MEDDOCAN scale (docs/results.md) and 8 bytes per distinct
n-gram, where a set of word tuples holds a tuple of strings per n-gram. Each word gets a
64-bit id (blake2b, 8 bytes), an n-gram the polynomial sum of its word ids (mod 2^64),
computed over all positions at once with numpy; distinct n-grams are a sorted uint64 array (8 bytes each). A false match
between two different n-grams has a probability of about 2^-60 per pair, so the figures are
exact in practice (tests/test_privacy.py checks them against plain sets of word tuples).
"""
import hashlib
import re
from array import array
from typing import Dict, Iterable, List, Tuple

import numpy as np

WORD = re.compile(r"\w+")
# Odd multiplier of the polynomial n-gram hash (the 64-bit golden ratio constant).
HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def word_runs(text: str) -> List[str]:
    """The words of a text as the n-gram measures see them.

    text (str): the text.
    RETURNS (List[str]): its lower-cased `\\w+` runs, in order.
    """
    return WORD.findall(text.lower())


def word_ids(texts: Iterable[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Word ids (uint64 hashes) of all texts in a row, and the number of words per text."""
    index: Dict[str, int] = {}
    flat, lengths = array("q"), array("q")
    for text in texts:
        text_words = word_runs(text)
        flat.extend([index.setdefault(word, len(index)) for word in text_words])
        lengths.append(len(text_words))
    digests = np.array([int.from_bytes(hashlib.blake2b(word.encode("utf8"), digest_size=8).digest(), "little")
                        for word in index], dtype=np.uint64)
    ids = digests[np.frombuffer(flat, dtype=np.int64)] if len(flat) else np.zeros(0, dtype=np.uint64)
    return ids, np.frombuffer(lengths, dtype=np.int64)


def ngram_hashes(texts: Iterable[str], n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Hash of every word n-gram of every text (none across texts), and the text of each.

    texts (Iterable[str]): the texts.
    n (int): words per n-gram (at least 1).
    RETURNS (Tuple[np.ndarray, np.ndarray]): (hashes, text index), of equal length, in text order.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    ids, lengths = word_ids(texts)
    text_of = np.repeat(np.arange(len(lengths)), lengths)
    n_starts = len(ids) - n + 1
    if n_starts <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    hashes = ids[:n_starts].copy()
    power = np.uint64(1)
    with np.errstate(over="ignore"):
        for k in range(1, n):
            power = power * HASH_MULTIPLIER
            hashes += ids[k:k + n_starts] * power
    within_one_text = text_of[:n_starts] == text_of[n - 1:n - 1 + n_starts]
    return hashes[within_one_text], text_of[:n_starts][within_one_text]


def distinct_ngrams(texts: Iterable[str], n: int) -> np.ndarray:
    """Sorted array of the distinct n-gram hashes of the texts."""
    return np.unique(ngram_hashes(texts, n)[0])


def ngram_recall(real_texts: Iterable[str], synth_texts: Iterable[str], n: int = 5) -> Dict:
    """Share of the real text's distinct n-grams found in the synthetic text, and the reverse.

    real_texts (Iterable[str]): the real notes.
    synth_texts (Iterable[str]): the synthetic notes.
    n (int): words per n-gram (the paper: 5).
    RETURNS (Dict): n, the distinct n-gram counts, `recall` (shared / real distinct n-grams, the
        paper's "5-gram recall") and `copy_rate` (shared / synthetic distinct n-grams: how much
        of the synthetic text is copied).
    """
    real, synth = distinct_ngrams(real_texts, n), distinct_ngrams(synth_texts, n)
    shared = int(np.intersect1d(real, synth, assume_unique=True).size)
    return {"n": n, "real_ngrams": int(real.size), "synthetic_ngrams": int(synth.size), "shared_ngrams": shared,
            "recall": shared / real.size if real.size else 0.0,
            "copy_rate": shared / synth.size if synth.size else 0.0}
