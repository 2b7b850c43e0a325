"""The synthetic demo corpus (template notes with Faker PHI; a demo, not clinical data)."""
from deid_synthesis.corpus.demo.notes import *  # noqa: F401,F403
from deid_synthesis.corpus.demo.notes import (  # noqa: F401
    LABELS, LABELS_ES, LABELS_SV, MAX_WORDS, MIN_WORDS, SPLITS, entity_counts, generate_corpus,
    generate_split, misaligned_spans, split_seed, write_corpus,
)
