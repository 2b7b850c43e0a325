"""Registered pieces that spaCy configs name (pass this file with `--code`).

Kept free of imports from the rest of `scripts/` so that `spacy package --code`
can copy it into a wheel on its own.
"""
import re
from typing import Callable

import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer

# Every character that is neither a word character nor whitespace is a token of its own:
# PHI annotations (MEDDOCAN: "NHC:7984385", "c/ del Abedul 5-7", "H." with "H" as the
# span) start and end at punctuation far more often than spaCy's Spanish/Swedish rules
# expect, so spans would not align with tokens and could never be predicted exactly.
_PUNCT = r"[^\w\s]"
# "MartínezNºCol", "DRAlberto": text glued by the export of the notes, split where a
# lower-case letter meets an upper-case one, or before the last capital of a capital run.
_CAMEL = r"(?<=[^\W\d_])(?<=[^\W\dA-ZÀ-ÖØ-Þ_])(?=[A-ZÀ-ÖØ-Þ])|(?<=[A-ZÀ-ÖØ-Þ]{2})(?=[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])"


@spacy.registry.tokenizers("deid.clinical_tokenizer.v1")
def create_clinical_tokenizer(split_camel_case: bool = True) -> Callable[[Language], Tokenizer]:
    """A language-independent tokenizer that splits off all punctuation.

    No exceptions ("Dr." becomes "Dr", "."), so the same text always gives the same
    tokens, whatever the language: what matters for de-identification is that entity
    boundaries fall on token boundaries.
    """
    infix = _PUNCT + ("|" + _CAMEL if split_camel_case else "")

    def make_tokenizer(nlp: Language) -> Tokenizer:
        return Tokenizer(
            nlp.vocab,
            rules={},
            prefix_search=re.compile("^" + _PUNCT).search,
            suffix_search=re.compile(_PUNCT + "$").search,
            infix_finditer=re.compile(infix).finditer,
        )

    return make_tokenizer
