"""The synthetic demo corpus: template notes with Faker PHI, a demo and not clinical data.

`notes` draws documents, splits and corpora; `es`, `sv` and `de` draw one patient of their
language; `values` holds what they share; `es.json`, `sv.json` and `de.json` the language data.
"""
from deid_synthesis.corpus.demo.notes import (  # noqa: F401
    LABELS,
    LABELS_DE,
    LABELS_ES,
    LABELS_SV,
    MAX_WORDS,
    MIN_WORDS,
    SPLITS,
    entity_counts,
    generate_corpus,
    generate_document,
    generate_split,
    misaligned_spans,
    split_seed,
    write_corpus,
)
