"""A seeded sample of a corpus's documents, cut into chunks: a test set that a slow annotator can run.

An LLM annotator on two CPU cores takes seconds per chunk, so its figures on MEDDOCAN's 250
test notes would take hours. Scoring it, and the CNN beside it, on the same seeded sample of
whole notes, cut as the annotator cuts synthetic notes (whole sentences, at most `max_words`
words, never inside an entity), keeps the comparison fair; entity-level scores are unchanged
by the cut, as no entity is ever cut.
"""
import random
from typing import List

from spacy.tokens import Doc

from deid_synthesis.corpus.docs import split_doc


def sample_chunks(docs: List[Doc], n_docs: int, seed: int, max_words: int) -> List[Doc]:
    """The chunks of `n_docs` documents drawn with `seed` (all documents when `n_docs` <= 0), in corpus order."""
    if n_docs <= 0 or n_docs >= len(docs):
        picked = range(len(docs))
    else:
        picked = sorted(random.Random(seed).sample(range(len(docs)), n_docs))
    return [chunk for i in picked for chunk in split_doc(docs[i], "chunks", max_words)]
