"""Fuzzing deid_rules + deid_transform: any text, any spans with the real labels, every mode.

Properties (bounded hypothesis runs, no deadline: Faker and the tokenizer take their time):

- no exception escapes (the tokenizer may refuse a text with a ValueError that does not
  quote it: a lone surrogate cannot be encoded);
- `doc._.deid_spans` are ordered, do not overlap, and the output reassembles from the input
  text and the replacements;
- no found string (4+ characters, with a letter or digit) survives in the output in any case
  or accent form, as a word the way residual_phi counts it, except where the component says
  it keeps it: a span left as it was (kind keep, `no_surrogate="keep"`), inside a redaction
  placeholder ("[LABEL]") or a mask.
"""
import os

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Span

import clinical_deid.rules  # noqa: F401  (registers deid_rules)
import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.labels import PRESETS
from deid_synthesis.residual_phi import occurrence_spans

TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}
LABELS = sorted({*PRESETS["meddocan"], *PRESETS["swedish_ner"], *PRESETS["stockholm_epr"]})
KEY = bytes(range(40, 72))
# Pieces of clinical notes, and the characters that broke or fooled the component before.
FRAGMENTS = [
    "Ana García López", "GARCIA", "garcía", "Garci\u0301a", "Straße", "STRASSE", "İnce", "ince",
    "ſeptiembre", "3 de ABRİL de 2019", "31/12/9999", "01/01/0001", "00/00/0000", "12/03/2019", "2019",
    "45 años", "0 meses", "8 días", "Madrid", "Getafe", "Hospital Universitario de Getafe",
    "C/ Irunlarrea, 3", "de la", "12345678Z", "X1234567L", "19121212-1212", "612 345 678",
    "ana@correo.es", "http://www.h.es/x", "10.0.0.1", "Anna Andersson", "3 maj 2018", "Karolinska",
    "madre", "H", "M", "\u202e", "\u200d", "\x00", "\n", "\t", "😀", "ﬁ", "K", "ǅ", "\ud800",
]
MODES = [  # (config, key)
    ({"mode": "redact"}, None),
    ({"mode": "mask"}, None),
    ({"mode": "pseudonymize"}, None),
    ({"mode": "pseudonymize"}, KEY),
    ({"mode": "pseudonymize", "no_surrogate": "keep"}, KEY),
]


def _pipeline(lang, config, key):
    nlp = spacy.blank(lang, config=TOKENIZER)
    nlp.add_pipe("deid_rules")
    transform = nlp.add_pipe("deid_transform", config=config)
    transform.set_key(key)
    return nlp


PIPELINES = {(lang, i): _pipeline(lang, config, key) for lang in ("es", "sv") for i, (config, key) in enumerate(MODES)}

texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8), st.text(st.characters(), max_size=4)),
    max_size=14,
).flatmap(lambda parts: st.sampled_from([" ", "", ". ", ", "]).map(lambda sep: sep.join(parts)))


def _make_doc(nlp, text):
    try:
        return nlp.make_doc(text)
    except ValueError as err:  # refused: it must say why without quoting the text
        assert text.strip() == "" or text not in str(err)
        return None


def _check_offsets(text, out, spans):
    pos = out_pos = 0
    for span in spans:
        assert pos <= span["start"] < span["end"] <= len(text)
        assert text[pos:span["start"]] == out[out_pos:span["out_start"]]
        assert out[span["out_start"]:span["out_end"]] == span["replacement"]
        pos, out_pos = span["end"], span["out_end"]
    assert text[pos:] == out[out_pos:]


def _allowed(span, text, mask_char="*"):
    """A span the component documents as leaving PHI-looking text in: kept as it was, a
    redaction placeholder, or a mask."""
    original = text[span["start"]:span["end"]]
    return (span["replacement"] == original or span.get("fallback") == "redact"
            or span["replacement"] == f"[{span['label']}]"
            or set(span["replacement"]) <= {mask_char, " ", "\n", "\t", "\r"} | {c for c in original if c.isspace()})


def _across_kept_spans(start, end, inside, text, out):
    """An occurrence made of spans all kept as they were by design (`no_surrogate="keep"`, kind
    keep) and of unchanged text between them that holds no letter or digit: "Ana García López
    Ana" across two kept mentions of "García López Ana" and the space between them."""
    if not inside or any(s["replacement"] != text[s["start"]:s["end"]] for s in inside):
        return False
    outside = [i for i in range(start, end) if not any(s["out_start"] <= i < s["out_end"] for s in inside)]
    return not any(out[i].isalnum() for i in outside)


def _check_no_found_string_survives(text, out, spans):
    found = {text[s["start"]:s["end"]] for s in spans if s["source"] != "propagated"}
    for string in found:
        if len(string) < 4 or not any(c.isalnum() for c in string):
            continue
        for start, end in occurrence_spans(out, string):
            inside = [s for s in spans if s["out_start"] < end and start < s["out_end"]]
            ok = (len(inside) == 1 and inside[0]["out_start"] <= start and end <= inside[0]["out_end"]
                  and _allowed(inside[0], text)) or _across_kept_spans(start, end, inside, text, out)
            assert ok, ("survives", len(string), start, [(s["label"], s["kind"], s["source"]) for s in inside])


@settings(max_examples=int(os.environ.get("DEID_FUZZ_EXAMPLES", 200)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=texts, lang=st.sampled_from(["es", "sv"]), mode=st.integers(0, len(MODES) - 1), data=st.data())
def test_any_text_and_spans_in_every_mode(text, lang, mode, data):
    nlp = PIPELINES[lang, mode]
    doc = _make_doc(nlp, text)
    if doc is None:
        return
    if len(doc):
        picks = data.draw(st.lists(st.tuples(st.integers(0, len(doc) - 1), st.integers(1, 4), st.sampled_from(LABELS)),
                                   max_size=6))
        ents, used = [], set()
        for start, length, label in picks:
            end = min(start + length, len(doc))
            if used.isdisjoint(range(start, end)):
                used.update(range(start, end))
                ents.append(Span(doc, start, end, label=label))
        doc.ents = ents
    for name, proc in nlp.pipeline:
        doc = proc(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert isinstance(out, str)
    _check_offsets(doc.text, out, spans)
    _check_no_found_string_survives(doc.text, out, spans)


# One label of each kind (deid_transform treats the labels of a kind alike).
ONE_LABEL_PER_KIND = sorted({PRESETS["auto"][label]: label for label in reversed(LABELS)}.values())


@pytest.mark.parametrize("lang", ["es", "sv"])
def test_every_fragment_as_every_kind(lang):
    """Each fragment as an entity of each kind, pseudonymized (where surrogates are drawn),
    and written again in upper case: the note never fails, the string never survives."""
    for i, (config, _) in enumerate(MODES):
        if config["mode"] != "pseudonymize":
            continue
        nlp = PIPELINES[lang, i]
        for fragment in FRAGMENTS:
            text = f"Nota: {fragment} y otra vez {fragment.upper()}."
            doc = _make_doc(nlp, text)
            if doc is None:
                continue
            for label in ONE_LABEL_PER_KIND:
                d = nlp.make_doc(text)
                span = d.char_span(6, 6 + len(fragment), label=label, alignment_mode="expand")
                d.ents = [span] if span is not None else []
                for _, proc in nlp.pipeline:
                    d = proc(d)
                _check_offsets(d.text, d._.deidentified, d._.deid_spans)
                _check_no_found_string_survives(d.text, d._.deidentified, d._.deid_spans)


@settings(max_examples=300, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=30),
       query=st.tuples(st.integers(0, 80), st.integers(0, 30)))
def test_coverage_equals_the_scan_it_replaces(spans, query):
    """Coverage (logarithmic per span, so dense notes stay linear) gives exactly what a scan
    of every taken span gives."""
    from clinical_deid.coverage import Coverage

    taken = [(s, s + n) for s, n in spans]
    start, end = query[0], query[0] + query[1]
    pieces, pos = [], start
    for s, e in sorted(t for t in taken if t[0] < end and start < t[1]):
        if s > pos:
            pieces.append((pos, s))
        pos = max(pos, e)
    if pos < end:
        pieces.append((pos, end))
    coverage = Coverage()
    for s, e in taken:  # added one at a time, in any order, as with_other_mentions does
        coverage.add(s, e)
    assert coverage.uncovered(start, end) == pieces


def test_a_found_string_across_mentions_kept_by_design_is_allowed():
    """The case hypothesis found on a clean machine: MISC (no surrogate) kept under
    `no_surrogate="keep"`, a found "Ana García López Ana" whose other mentions overlap it."""
    text = "Ana García López Ana García López Ana García López Ana García López"
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"mode": "pseudonymize", "no_surrogate": "keep"})
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, 0, 4, label="MISC")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    _check_offsets(text, out, spans)
    _check_no_found_string_survives(text, out, spans)
