"""Few-shot examples for the LLM annotator, drawn from the gold training split, PHI replaced.

`deid.GoldNERExamples.v1` (spacy-llm's `llm_misc` registry, the `examples` of `spacy.NER.v3`)
reads a gold DocBin and picks `n` passages of at most `max_words` words (whole sentences, cut
as the annotator's chunks are, never inside an entity) that hold entities: first those that
add labels no pick holds yet, so the examples show as many labels as they can, then seeded
draws. Each passage's PHI is replaced by surrogates of its kind with the gold entities moving
with the text (`pseudonymize_corpus.pseudonymize_doc`, surrogates that are no identifying
string of the split), so the prompt sent to a server and the examples spacy-llm saves with the
pipeline hold no real PHI value; the sentences around it are real note text (use `n = 0`, or an
examples file of your own through `spacy.FewShotReader.v1`, where that is not acceptable).

With no path (`null` or ""), or `n = 0`, there are no examples: the task is zero-shot, for a
team with no annotated corpus.
"""
import random
from pathlib import Path
from typing import Callable, Dict, List, Optional

import spacy
from spacy.tokens import Doc
from spacy_llm.registry import registry

from clinical_deid.io import read_docbin
from deid_synthesis.corpus.docs import split_doc
from deid_synthesis.privacy import PhiIndex
from deid_synthesis.pseudonymize_corpus import corpus_transform, pseudonymize_doc


def candidate_passages(docs: List[Doc], max_words: int) -> List[Doc]:
    """Passages of at most `max_words` words (whole sentences) that hold at least one entity."""
    return [part for doc in docs for part in split_doc(doc, "chunks", max_words) if part.ents]


def pick_passages(passages: List[Doc], n: int, seed: int) -> List[Doc]:
    """`n` passages: each next one adds the most labels not shown yet, ties and the rest by seeded draw."""
    pool = list(passages)
    random.Random(seed).shuffle(pool)
    picked, shown = [], set()
    while pool and len(picked) < n:
        best = max(range(len(pool)), key=lambda i: len({e.label_ for e in pool[i].ents} - shown))
        passage = pool.pop(best)
        picked.append(passage)
        shown |= {e.label_ for e in passage.ents}
    return picked


def as_example(doc: Doc) -> Dict:
    """A passage in NER.v3's example format: its text and each entity with a short reason."""
    return {"text": doc.text,
            "spans": [{"text": ent.text, "is_entity": True, "label": ent.label_, "reason": f"is a {ent.label_}"}
                      for ent in doc.ents]}


def gold_examples(path: Path, n: int, max_words: int, seed: int, lang: str) -> List[Dict]:
    """The examples (see the module docstring): `n` pseudonymized passages of the DocBin at `path`."""
    nlp = spacy.blank(lang)
    docs = read_docbin(path, nlp.vocab)
    index = PhiIndex(docs, min_chars=3, max_gold_docs=1)
    transform = corpus_transform(lang, seed, frozenset(index.strings[i] for i in index.identifying))
    picked = pick_passages(candidate_passages(docs, max_words), n, seed)
    return [as_example(pseudonymize_doc(nlp, transform, passage)[0]) for passage in picked]


@registry.llm_misc("deid.GoldNERExamples.v1")
def make_gold_examples(path: Optional[str] = None, n: int = 4, max_words: int = 60, seed: int = 0,
                       lang: str = "es") -> Callable[[], List[Dict]]:
    """Few-shot examples from a gold DocBin (none when `path` is empty or `n` is 0); see the module docstring."""
    if n < 0 or max_words < 1:
        raise ValueError("deid.GoldNERExamples.v1: n must be >= 0 and max_words >= 1")

    def read() -> List[Dict]:
        if not path or n == 0:
            return []
        return gold_examples(Path(path), n, max_words, seed, lang)

    return read
