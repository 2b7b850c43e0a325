"""Registered pieces that spaCy configs name (pass this file with `--code`).

Kept free of imports from the rest of `scripts/` so that `spacy package --code`
can copy it into a wheel on its own.
"""
import re
from functools import lru_cache
from typing import Any, Callable, Dict, Iterator, List

import numpy
import spacy
from spacy.attrs import ORTH, SPACY
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc

# Every character that is neither a word character nor whitespace is a token of its own:
# PHI annotations (MEDDOCAN: "NHC:7984385", "c/ del Abedul 5-7", "H." with "H" as the
# span) start and end at punctuation far more often than spaCy's Spanish/Swedish rules
# expect, so spans would not align with tokens and could never be predicted exactly.
_PUNCT = r"[^\w\s]"
# "MartínezNºCol", "DRAlberto": text glued by the export of the notes, split where a
# lower-case letter meets an upper-case one, or before the last capital of a capital run.
_CAMEL = r"(?<=[^\W\d_])(?<=[^\W\dA-ZÀ-ÖØ-Þ_])(?=[A-ZÀ-ÖØ-Þ])|(?<=[A-ZÀ-ÖØ-Þ]{2})(?=[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])"

_PUNCT_RE = re.compile(_PUNCT)
# The last punctuation character before `endpos` (searched with pos/endpos): only the
# one followed by word characters up to the end matches, so the search stays linear.
_LAST_PUNCT_RE = re.compile(_PUNCT + r"(?=\w*\Z)")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


@lru_cache(maxsize=8)
def _long_runs(max_span: int) -> "re.Pattern[str]":
    """Whitespace-free runs longer than `max_span`, matched only from a run's first
    character (the look-behind), so that runs just under the bound cost one scan."""
    return re.compile(r"(?<!\S)\S{%d,}" % (max_span + 1))


class ClinicalTokenizer(Tokenizer):
    """spaCy's `Tokenizer` with the project's rules, made linear on long runs.

    spaCy's affix loop strips one prefix or suffix per turn, re-slicing the rest of a
    whitespace-free run and re-running the `$`-anchored suffix search over all of it:
    quadratic (a run of 20,000 punctuation characters took 8 s, 97% in the suffix
    search). With these rules every non-word non-space character is a token of its own
    and word runs are never split across one, so a long run can be cut next to any
    punctuation character without changing a single token. Ordinary text (no run
    longer than `max_span`) goes to spaCy's tokenizer untouched; a text with long runs
    is cut into pieces at such places, each piece tokenized by spaCy and the words and
    spaces joined into one `Doc`. Serialization, pickling and `pipe` are spaCy's own.
    """

    max_span = 64  # longest whitespace-free run passed to spaCy whole
    chunk = 64  # length of the pieces a longer run is cut into

    def __call__(self, text: str) -> Doc:
        """Tokenize `text` exactly as spaCy's tokenizer with the same rules would."""
        try:
            return self._tokenize(text)
        except UnicodeEncodeError:
            # spaCy hashes UTF-8 bytes, which a lone surrogate has none of; say where,
            # never what (the exception spaCy raises quotes the text).
            found = _SURROGATE_RE.search(text)
            offset = found.start() if found is not None else -1
            raise ValueError(f"tokenizer: text has a lone surrogate at offset {offset} "
                             "(not UTF-8 encodable)") from None

    def _tokenize(self, text: str) -> Doc:
        """spaCy's tokenizer on `text` whole, or on the pieces `_cuts` gives."""
        cuts = self._cuts(text) if len(text) > self.max_span else []
        if not cuts:
            return Tokenizer.__call__(self, text)
        # Orths and spaces as arrays, not Token objects: a million tokens stay linear.
        pieces = [Tokenizer.__call__(self, text[start:end]).to_array([ORTH, SPACY])
                  for start, end in zip([0] + cuts, cuts + [len(text)])]
        joined = numpy.concatenate(pieces)
        strings = self.vocab.strings
        words = [strings[orth] for orth in joined[:, 0].tolist()]
        return Doc(self.vocab, words=words, spaces=joined[:, 1].astype(bool).tolist())

    def _rules_are_ours(self) -> bool:
        """True when the loaded rules are the ones the cuts are proven safe for (a
        tokenizer loaded with other rules falls back to spaCy's own loop)."""
        infix = getattr(self.infix_finditer, "__self__", None)
        prefix = getattr(self.prefix_search, "__self__", None)
        suffix = getattr(self.suffix_search, "__self__", None)
        return (
            not self.rules and self.token_match is None and self.url_match is None
            and getattr(prefix, "pattern", None) == "^" + _PUNCT
            and getattr(suffix, "pattern", None) == _PUNCT + "$"
            and getattr(infix, "pattern", None) in (_PUNCT, _PUNCT + "|" + _CAMEL)
        )

    def _cuts(self, text: str) -> List[int]:
        """Offsets where `text` can be cut without changing its tokens, empty when no
        whitespace-free run is longer than `max_span` (the common case, one scan)."""
        if max(map(len, text.split()), default=0) <= self.max_span:
            return []
        runs = [m.span() for m in _long_runs(self.max_span).finditer(text)]
        if not runs or not self._rules_are_ours():
            return []
        return [cut for start, end in runs for cut in _run_cuts(text, start, end, self.chunk)]


def _run_cuts(text: str, start: int, end: int, chunk: int) -> Iterator[int]:
    """Cut the whitespace-free run text[start:end] into pieces of at most `chunk`
    characters, or into a whole word run (word runs cost spaCy linear time and must
    not be split). Every cut lies next to a punctuation character, where these rules
    always put a token boundary; each step jumps `chunk` ahead, so the run is read
    about once."""
    pos = start
    while end - pos > chunk:
        target = pos + chunk
        if _PUNCT_RE.match(text, target - 1) or _PUNCT_RE.match(text, target):
            cut = target  # punctuation just before or at the target
        else:
            last = _LAST_PUNCT_RE.search(text, pos, target)
            if last is not None:
                cut = last.end()  # the word run around the target starts here
            else:
                nxt = _PUNCT_RE.search(text, target, end)  # a word run from `pos`
                cut = nxt.start() if nxt is not None else end
        if cut >= end:
            return
        yield cut
        pos = cut


def clinical_rules(split_camel_case: bool = True) -> Dict[str, Any]:
    """The tokenizer's rules as `Tokenizer` keyword arguments: no exceptions, every
    non-word non-space character a prefix, suffix and infix, plus the camel-case infix."""
    infix = _PUNCT + ("|" + _CAMEL if split_camel_case else "")
    return {
        "rules": {},
        "prefix_search": re.compile("^" + _PUNCT).search,
        "suffix_search": re.compile(_PUNCT + "$").search,
        "infix_finditer": re.compile(infix).finditer,
    }


def spacy_clinical_tokenizer(nlp: Language, split_camel_case: bool = True) -> Tokenizer:
    """spaCy's own `Tokenizer` with the same rules: the tokenizer as it was before the
    cuts (quadratic on long runs), kept as the reference the tests and the benchmark
    compare `ClinicalTokenizer` with."""
    return Tokenizer(nlp.vocab, **clinical_rules(split_camel_case))


@spacy.registry.tokenizers("deid.clinical_tokenizer.v1")
def create_clinical_tokenizer(split_camel_case: bool = True) -> Callable[[Language], Tokenizer]:
    """A language-independent tokenizer that splits off all punctuation.

    No exceptions ("Dr." becomes "Dr", "."), so the same text always gives the same
    tokens, whatever the language: what matters for de-identification is that entity
    boundaries fall on token boundaries. Linear in the length of the text, whatever it
    holds (see `ClinicalTokenizer`); the same tokens as spaCy's `Tokenizer` with these
    rules, and saved the same way, so models saved before load unchanged.
    """

    def make_tokenizer(nlp: Language) -> Tokenizer:
        return ClinicalTokenizer(nlp.vocab, **clinical_rules(split_camel_case))

    return make_tokenizer


def count_words(doc_or_span) -> int:
    """The project's one measure of "words": tokens that are neither whitespace nor punctuation.

    Every figure printed as "words" (corpus sizes, synthetic volume, chunk limits) is this
    count; a figure of all spaCy tokens (speeds: tokens/s, as `spacy evaluate`'s "words/s"
    counts them) is called "tokens".

    doc_or_span (Union[Doc, Span]): the text, tokenized.
    RETURNS (int): the number of words.
    """
    return sum(1 for token in doc_or_span if not (token.is_space or token.is_punct))
