"""Property-based tests (hypothesis) of the corpus converters: BRAT, JSONL and CoNLL.

Any Unicode text (BOM, combining marks, right-to-left, emoji, control characters, line and
paragraph separators, CRLF), any span set (odd offsets, Unicode digits, huge or negative
numbers, wrong types, empty labels, overlaps) and any JSON. For every input the converter
either writes a DocBin whose texts are the input texts and whose entities are input spans
exactly (or trimmed of white space at an edge, and listed as trimmed), with every span it did
not keep counted (lenient: skipped; any mode: misaligned
and dropped), or raises `CorpusError` naming the file, never carrying input text, and
leaving no output file behind. Lenient mode never raises while documents remain.

Bounded (max_examples, deadline=None, derandomized) so the file runs in well under a minute;
FUZZ_EXAMPLES=400 explores more (minutes).
"""
import json
from pathlib import Path

import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from deid_synthesis.corpus.convert import convert

SECRET = "Qzxjvkwy"  # a word no generated label or key can hold: never in a message or report
SPAN_KINDS = {"offset_out_of_range", "overlapping_span", "text_mismatch", "malformed_line",
              "discontinuous_span", "bad_span", "whitespace_span"}
FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", 50)), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

SPECIALS = ["\ufeff", "\u0301", "e\u0301", "\u202e", "\u200f", "\u05e9\u05dc\u05d5\u05dd",
            "\u0645\u0631\u062d\u0628\u0627", "\U0001F600", "\U0001F469\u200d\U0001F52C", "\x00",
            "\x07", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\r\n", "\r", "\n", "\t",
            " ", "  ", "\xa0", "\u3000", "Juan", "Pérez", "12/03/2019", "-", ".", "²", "\u0663"]
LABELS = st.sampled_from(["NOMBRE", "EDAD", "LOC", "PER", "B", "X-Y", "lab_el", "Ñ"])


def _no_surrogates(s: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


TEXT_PIECES = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.just(SECRET),
)
TEXTS = st.lists(TEXT_PIECES, min_size=1, max_size=12).map(lambda parts: "".join(parts) + " " + SECRET)


def load(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))


def attempt(src: Path, fmt: str, lenient: bool, report_secret_free: bool = True, **kwargs):
    """Run the converter; check the failure contract and return (report, docs) or None."""
    out = src.parent / "out" / "corpus.spacy"
    try:
        report = convert(src, out, fmt, "es", lenient=lenient, **kwargs)
    except ValueError as err:
        message = str(err)
        assert type(err).__name__ == "CorpusError", f"{type(err).__name__} escaped"
        assert SECRET not in message
        assert src.name in message or str(src) in message, "the message names no file"
        assert not out.exists(), "a failed conversion left an output file"
        assert not list(out.parent.glob("*.tmp")) if out.parent.exists() else True
        if lenient:
            assert "no documents" in message, "lenient mode raised on an item"
        return None
    dumped = json.dumps(report, ensure_ascii=False)
    assert SECRET not in dumped or not report_secret_free
    return report, load(out)


def dropped(report) -> int:
    return sum(1 for m in report["misaligned"] if m["action"].startswith("dropped"))


def span_skips(report) -> int:
    return sum(n for kind, n in report["skipped"].items() if kind in SPAN_KINDS)


def trimmed(text: str, label: str, start: int, end: int):
    """An input span as the converter keeps it: white space at its edges trimmed (issue 12)."""
    if not 0 <= start < end <= len(text):
        return label, start, end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return label, start, end


def check_entities(docs, texts, spans, report=None):
    """Every doc holds its input text; every entity is an input span, to the character
    (after trimming white space at its edges, which the report lists), or one the report
    says it contracted (--misaligned contract)."""
    contracted = {(m["label"], m["start"], m["end"]) for m in (report or {}).get("misaligned", [])
                  if m["action"] == "contract"}
    for doc in docs:
        doc_id = doc.user_data["id"]
        assert doc.text == texts[doc_id]
        kept = {trimmed(doc.text, *span) for span in spans[doc_id]}
        for ent in doc.ents:
            triple = (ent.label_, ent.start_char, ent.end_char)
            assert triple in kept or any(
                label == ent.label_ and start <= ent.start_char < ent.end_char <= end
                for label, start, end in contracted & kept)
            if triple not in spans[doc_id] and report is not None:
                assert report["trimmed"], "a trimmed span that the report does not list"


# --- BRAT -----------------------------------------------------------------------------

OFFSET_STRINGS = st.one_of(
    st.integers(-3, 60).map(str), st.sampled_from(["²", "\u0663", "1_0", "+3", " 4", "0x1", "", "9" * 5000]),
)


@st.composite
def brat_docs(draw):
    """A text and .ann lines: well-formed spans, odd ones, other annotation kinds."""
    text = draw(TEXTS)
    lines, triples = [], set()
    for n in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["good", "good", "good", "odd", "wrong_text", "other", "disc"]))
        label = draw(st.one_of(LABELS, st.sampled_from(["", "A B"])))
        if kind in ("good", "wrong_text"):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            triples.add((label, start, end))
            ann_text = text[start:end] if kind == "good" else "x" + text[start:end]
            lines.append(f"T{n}\t{label} {start} {end}\t{ann_text}")
        elif kind == "odd":
            start, end = draw(OFFSET_STRINGS), draw(OFFSET_STRINGS)
            lines.append(f"T{n}\t{label} {start} {end}\t{draw(st.sampled_from(['', SECRET, 'a']))}")
        elif kind == "disc":
            lines.append(f"T{n}\t{label} 0 1;2 3\t{SECRET}")
        else:
            lines.append(draw(st.sampled_from([f"#{n}\tAnnotatorNotes T1\t{SECRET}", f"R{n}\tRel Arg1:T1 Arg2:T2",
                                                f"A{n}\tNeg T1", ""])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return text, newline.join(lines) + newline, triples


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples * 2 // 3))  # files + spaCy: the slowest
@given(docs=st.lists(brat_docs(), min_size=1, max_size=2), lenient=st.booleans(),
       misaligned=st.sampled_from(["split", "skip", "contract"]))
def test_brat_fuzz(tmp_path_factory, docs, lenient, misaligned):
    folder = tmp_path_factory.mktemp("brat") / "in"
    folder.mkdir()
    texts, spans, n_t_lines = {}, {}, 0
    for i, (text, ann, triples) in enumerate(docs):
        (folder / f"d{i}.txt").write_bytes(text.encode("utf-8"))
        (folder / f"d{i}.ann").write_bytes(ann.encode("utf-8"))
        texts[f"d{i}"], spans[f"d{i}"] = text, triples
        n_t_lines += sum(1 for line in ann.split("\n") if line.startswith("T"))
    result = attempt(folder, "brat", lenient, misaligned=misaligned)
    if result is None:
        return
    report, out_docs = result
    assert len(out_docs) == len(docs)
    check_entities(out_docs, texts, spans, report)
    if not lenient:
        assert report["skipped"] == {}
    # Every T line is an entity, or counted as skipped, or reported as dropped.
    n_ents = sum(len(d.ents) for d in out_docs)
    skipped_by_policy = sum(1 for m in report["misaligned"] if m["action"] == "skip")
    assert n_t_lines == n_ents + span_skips(report) + dropped(report) + skipped_by_policy


# --- JSONL ----------------------------------------------------------------------------

ODD_NUMBERS = st.one_of(st.integers(-5, 80), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                        st.booleans(), st.none(), st.text(max_size=3), st.just(10 ** 30))


@st.composite
def jsonl_records(draw):
    """A well-formed record (text, a list of span objects) whose spans hold any value."""
    text = draw(TEXTS)
    spans, triples = [], set()
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            span = {"start": start, "end": end, "label": draw(LABELS)}
            if draw(st.booleans()):
                span["text"] = text[start:end] if draw(st.booleans()) else SECRET
            triples.add((span["label"], start, end))
        else:
            span = {"start": draw(ODD_NUMBERS), "end": draw(ODD_NUMBERS),
                    "label": draw(st.one_of(LABELS, st.just(""), st.none(), st.integers(), st.lists(LABELS, max_size=1)))}
            for key in draw(st.lists(st.sampled_from(["start", "end", "label"]), max_size=2)):
                span.pop(key, None)
            if isinstance(span.get("start"), int) and isinstance(span.get("end"), int) and isinstance(span.get("label"), str):
                triples.add((span["label"], span["start"], span["end"]))
        spans.append(span)
    return text, spans, triples


def write_jsonl(path: Path, lines, ensure_ascii: bool) -> None:
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))


@FUZZ
@given(records=st.lists(jsonl_records(), min_size=1, max_size=3), lenient=st.booleans(),
       ensure_ascii=st.booleans(), crlf=st.booleans())
def test_jsonl_fuzz_spans(tmp_path_factory, records, lenient, ensure_ascii, crlf):
    path = tmp_path_factory.mktemp("jsonl") / "in.jsonl"
    texts, spans, n_spans = {}, {}, 0
    lines = []
    for i, (text, span_list, triples) in enumerate(records):
        lines.append(json.dumps({"id": f"r{i}", "text": text, "spans": span_list}, ensure_ascii=ensure_ascii))
        texts[f"r{i}"], spans[f"r{i}"] = text, triples
        n_spans += len(span_list)
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode("utf-8"))
    result = attempt(path, "jsonl", lenient)
    if result is None:
        return
    report, docs = result
    assert len(docs) == len(records)  # well-formed records are never dropped
    check_entities(docs, texts, spans, report)
    assert n_spans == sum(len(d.ents) for d in docs) + span_skips(report) + dropped(report)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.just(SECRET),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["text", "spans", "entities", "label", "start", "end", "id", "meta", "start_offset"]),
        children, max_size=4),
    max_leaves=12,
)
RAW_LINES = st.sampled_from(["", "   ", "{", "[1, 2", "NaN", '{"text": "\\ud800 ' + SECRET + '", "spans": []}',
                             "[" * 5000 + "]" * 5000, '{"text": "a", "spans": [{"start": ' + "9" * 5000 + "}]}",
                             "\ufeff{\"text\": \"a\"}", '{"text": "' + SECRET + '", "spans": 5}',
                             '{"text": "' + SECRET + '", "spans": [{"start": 0, "end": Infinity, "label": "X"}]}'])


@FUZZ
@given(values=st.lists(st.one_of(JSON_VALUES.map(json.dumps), RAW_LINES), min_size=1, max_size=4),
       lenient=st.booleans())
def test_jsonl_fuzz_any_json(tmp_path_factory, values, lenient):
    path = tmp_path_factory.mktemp("jsonl") / "any.jsonl"
    path.write_bytes("\n".join(values).encode("utf-8", "surrogatepass"))
    result = attempt(path, "jsonl", lenient)
    if result is None:
        return
    report, docs = result
    for doc in docs:
        for ent in doc.ents:
            assert ent.label_ and ent.start_char < ent.end_char


# --- CoNLL ----------------------------------------------------------------------------

TOKENS = st.one_of(st.sampled_from(["Ana", "Lund", "0", SECRET, "é\u0301", "\U0001F600", "\u202eabc", "a\u2028b",
                                    "x\x85y", "\ufeffW", "a b"]),
                   st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5))
TAGS = st.sampled_from(["O", "0", "_", "B-PER", "I-PER", "E-PER", "S-LOC", "L-LOC", "U-LOC", "PER", "LOC",
                        "B-", "I_ORG", "o", SECRET, "B-" + SECRET])


@st.composite
def conll_lines(draw):
    """Token lines (tab, space or odd whitespace between token and tag), blank lines, DOCSTART."""
    kind = draw(st.sampled_from(["tok", "tok", "tok", "tok", "blank", "docstart", "notag"]))
    if kind == "blank":
        return draw(st.sampled_from(["", " ", "\t"]))
    if kind == "docstart":
        return "-DOCSTART- -X- O O"
    token = draw(TOKENS)
    if kind == "notag":
        return token
    return token + draw(st.sampled_from(["\t", " ", "   ", "\t\t"])) + draw(TAGS)


@FUZZ
@given(lines=st.lists(conll_lines(), min_size=1, max_size=15), lenient=st.booleans(),
       scheme=st.sampled_from(["auto", "io", "bio", "bilou"]), sents_per_doc=st.integers(1, 3),
       crlf=st.booleans())
def test_conll_fuzz(tmp_path_factory, lines, lenient, scheme, sents_per_doc, crlf):
    path = tmp_path_factory.mktemp("conll") / "in.conll"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode("utf-8"))
    # A word in the tag column (a misformatted line) becomes a label in auto / io mode: the
    # report lists labels, so only messages are checked for it then.
    secret_tag = any(line.endswith(SECRET) for line in lines)
    result = attempt(path, "conll", lenient, report_secret_free=not secret_tag,
                     tag_scheme=scheme, sents_per_doc=sents_per_doc)
    if result is None:
        return
    report, docs = result
    for doc in docs:
        for ent in doc.ents:
            assert ent.label_ and ent.text == ent.text.strip()
            # An entity covers whole tokens of the file: it starts and ends at a token edge.
            assert ent.start_char == 0 or doc.text[ent.start_char - 1] == " "
            assert ent.end_char == len(doc.text) or doc.text[ent.end_char] == " "
