"""Words of a plain text, as the project counts them: the size of gold and synthetic text.

The generation step's volume (synthetic words / gold training words) and the privacy report's
sizes count words with `clinical_deid.tokenizer.count_words` (tokens that are neither
whitespace nor punctuation) on the clinical tokenizer's tokens, for the gold text and the
samples alike, so that a ratio compares like with like. Only the tokenizer runs (cheap). No
torch, and no import of the rest of `generation` (the privacy package imports this module).
"""
from functools import lru_cache
from typing import Callable

import spacy

from clinical_deid.tokenizer import count_words, create_clinical_tokenizer


@lru_cache(maxsize=4)
def word_counter(lang: str = "xx") -> Callable[[str], int]:
    """A function giving the words (`count_words`) of a text tokenized by the clinical tokenizer.

    The tokenizer's rules and the lexical attributes `count_words` reads (is_space, is_punct)
    are the same in every language spaCy has, so any `lang` gives the same counts; the run's
    language is passed where it is known, "xx" (multi-language) elsewhere.

    lang (str): the language code of the blank pipeline (tokenizer only).
    RETURNS (Callable[[str], int]): text -> its number of words.
    """
    tokenizer = create_clinical_tokenizer()(spacy.blank(lang))  # deid.clinical_tokenizer.v1, camel case split

    def words_of(text: str) -> int:
        return count_words(tokenizer(text))

    return words_of
