"""The clinical tokenizer (`deid.clinical_tokenizer.v1`): the same tokens as spaCy's own
`Tokenizer` with the same rules (the reference, quadratic on long runs), in linear time.

Trained models depend on the tokens, so identity is checked against the reference on
generated text (hypothesis, bounded), with the cut sizes forced down to a few characters so
that short texts go through the cutting path too; then the tokenizer is checked as spaCy
uses it: saving and loading (also what the old tokenizer wrote), pickling, `nlp.pipe`,
memory zones.
"""
import pickle
import re
import time

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokenizer import Tokenizer

from clinical_deid.tokenizer import (_PUNCT_RE, ClinicalTokenizer, _run_cuts, create_clinical_tokenizer,
                               spacy_clinical_tokenizer)

# Characters that stress the rules: letters of both cases (ASCII, Latin-1, camel-case
# edges), digits, "_" (a word character), punctuation, whitespace of all kinds, emoji
# (with a joiner and a skin tone), a combining mark, right-to-left letters and digits.
ALPHABET = list("aBcDzZéÉñÑÀßþÞ09٣_ .,;:-/()@#'\"") + [
    "\n", "\t", "\r", "\u00a0", "\u2028", "\u3000", "\x1c", "😀", "🩺", "\u200d", "\U0001F3FD",
    "\u0301", "\u05e9", "\u0627", "\ufeff", "  ",
]
TEXT = st.lists(st.sampled_from(ALPHABET), max_size=120).map("".join)
ANY_TEXT = st.text(max_size=300)  # any code point, lone surrogates included


def is_clinical(tokenizer) -> bool:
    """By name: a test that runs a command with `--code src/clinical_deid/tokenizer.py` imports the file
    again as module `functions`, which registers its own (identical) class."""
    return type(tokenizer).__name__ == ClinicalTokenizer.__name__


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    assert is_clinical(nlp.tokenizer)
    # This module's own class (the registry may hold the copy a `--code` import made, whose
    # module pickle cannot import): the pickling test below needs an importable class.
    nlp.tokenizer = create_clinical_tokenizer()(nlp)
    return nlp


@pytest.fixture(scope="module")
def reference(nlp):
    return spacy_clinical_tokenizer(nlp)


def tokens(doc):
    return [(t.text, t.whitespace_) for t in doc]


def small_cuts(nlp, max_span, chunk, split_camel_case=True):
    """A tokenizer that cuts runs longer than `max_span` into `chunk`-sized pieces."""
    tok = create_clinical_tokenizer(split_camel_case)(nlp)
    tok.max_span, tok.chunk = max_span, chunk
    return tok


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, max_span=st.integers(1, 6), chunk=st.integers(1, 8), camel=st.booleans())
def test_same_tokens_as_spacy_when_cut_everywhere(nlp, text, max_span, chunk, camel):
    tok = small_cuts(nlp, max_span, chunk, camel)
    ref = spacy_clinical_tokenizer(nlp, camel)
    assert tokens(tok(text)) == tokens(ref(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_same_tokens_as_spacy_default_sizes(nlp, reference, text):
    assert tokens(nlp.tokenizer(text * 3)) == tokens(reference(text * 3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ANY_TEXT, max_span=st.sampled_from([2, 64]))
def test_any_unicode_offsets_consistent(nlp, reference, text, max_span):
    """Any text: the Doc's text is the input, every token sits at its offset, and the only
    error is a ValueError for a lone surrogate that names the offset, not the text."""
    tok = small_cuts(nlp, max_span, max_span)
    try:
        doc = tok(text)
    except ValueError as err:
        assert re.search(r"[\ud800-\udfff]", text)
        assert "offset" in str(err) and not any(ch in str(err) for ch in text if not ch.isascii())
        return
    assert doc.text == text
    for t in doc:
        assert text[t.idx : t.idx + len(t.text)] == t.text and t.text
    assert tokens(doc) == tokens(reference(text))


@pytest.mark.parametrize("run", [
    ".,;:!?-/()", "😀🩺💊", "0123456789", "0.a-B", "aBcDeF", "ABCDEFGabc", "x_y", "é\u0301.",
    "a", "ab.", "\u05e9\u05dc.1", "😀\u200d🩺a",
])
def test_long_runs_same_as_spacy(nlp, reference, run):
    """Runs of 2,000 characters (the reference takes a fraction of a second there)."""
    for text in ((run * 2000)[:2000], "Paciente " + (run * 2000)[:2000] + " alta.\n", "0" * 1500 + run * 50):
        doc = nlp.tokenizer(text)
        assert doc.text == text
        assert tokens(doc) == tokens(reference(text))


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(list("ab0_.,😀\u0301")), min_size=1, max_size=300).map("".join),
       chunk=st.integers(1, 20))
def test_run_cuts_pieces_are_short_or_one_word_run(text, chunk):
    """Each piece of a run is at most `chunk` characters or a single word run, and every
    cut touches punctuation: what keeps spaCy linear and the tokens unchanged."""
    cuts = list(_run_cuts(text, 0, len(text), chunk))
    assert cuts == sorted(set(cuts)) and all(0 < c < len(text) for c in cuts)
    for c in cuts:
        assert _PUNCT_RE.match(text, c - 1) or _PUNCT_RE.match(text, c)
    for start, end in zip([0] + cuts, cuts + [len(text)]):
        piece = text[start:end]
        assert len(piece) <= chunk or not _PUNCT_RE.search(piece)


@pytest.mark.parametrize("unit", [".,;:", "😀", "0", "a.", "0" * 1000 + "."])
def test_linear_on_200k_characters(nlp, unit):
    """200,000 characters in seconds (the reference took 7.7 s at 20,000 punctuation
    characters and grows with the square)."""
    text = (unit * 200_000)[:200_000]
    start = time.process_time()
    doc = nlp.tokenizer(text)
    assert time.process_time() - start < 15
    assert len(doc.text) == len(text)


def test_saved_and_loaded(nlp, tmp_path):
    text = "Dr." + "." * 300 + "MartínezNºCol 612-345-678 " + "😀" * 200
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert is_clinical(loaded.tokenizer) and loaded.tokenizer._rules_are_ours()
    assert tokens(loaded(text)) == tokens(nlp(text))
    again = create_clinical_tokenizer()(nlp).from_bytes(nlp.tokenizer.to_bytes())
    assert tokens(again(text)) == tokens(nlp.tokenizer(text))
    restored = pickle.loads(pickle.dumps(nlp.tokenizer))
    assert is_clinical(restored) and tokens(restored(text)) == tokens(nlp.tokenizer(text))


def test_loads_what_the_old_tokenizer_wrote(nlp, reference):
    """Models saved before hold a plain Tokenizer's bytes: they load into the new one,
    which still takes the linear path."""
    tok = create_clinical_tokenizer()(nlp).from_bytes(reference.to_bytes())
    assert tok._rules_are_ours()
    text = "NHC:" + "-" * 500 + "7984385"
    assert tokens(tok(text)) == tokens(reference(text))


def test_other_rules_fall_back_to_spacy(nlp):
    """Rules the cuts are not proven for (here spaCy's Spanish ones) are left to spaCy."""
    spanish = spacy.blank("es").tokenizer
    tok = create_clinical_tokenizer()(nlp).from_bytes(spanish.to_bytes(exclude=["vocab"]))
    tok.max_span = tok.chunk = 4
    assert not tok._rules_are_ours()
    text = "Dr. Gómez (etc.)... " + "-" * 40
    assert tokens(tok(text)) == tokens(spanish(text))


def test_pipe_and_memory_zone(nlp, reference):
    texts = ["Sra. García: 612 345 678.", "." * 500 + "a" * 70, "", "  \n", "😀" * 100 + " fin"]
    assert [tokens(d) for d in nlp.tokenizer.pipe(texts)] == [tokens(reference(t)) for t in texts]
    assert [tokens(d) for d in nlp.pipe(texts)] == [tokens(reference(t)) for t in texts]
    with nlp.memory_zone():
        inside = [tokens(nlp(t)) for t in texts]
    assert inside == [tokens(reference(t)) for t in texts]
    assert [tokens(nlp(t)) for t in texts] == inside


def test_reference_is_a_plain_spacy_tokenizer(nlp):
    assert type(spacy_clinical_tokenizer(nlp)) is Tokenizer
