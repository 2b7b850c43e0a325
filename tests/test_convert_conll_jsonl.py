"""Conversion of CoNLL and JSONL files: tag schemes, sentences, malformed lines and spans strict
and lenient, the real Swedish NER corpus, and the regressions the fuzz tests found.

The real corpus is read from ../shared/data; its text is never printed."""
import json

import pytest

from deid_synthesis.corpus.readers import read_corpus
from deid_synthesis.corpus.records import CorpusError, Problems
from convert_support import DATA, ents, run, assert_names, conll, JSONL_GOOD, jsonl, JSONL_CASES

def test_conll_missing_tag(tmp_path):
    path = conll(tmp_path, ["Ana\tPER", "bor\t0", "", "i", "Lund\tLOC"])
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "conll")
    assert_names(err, path, 4)
    report, docs = run(tmp_path, path, "conll", lenient=True)
    assert report["skipped"] == {"missing_tag": 1}
    assert ents(docs) == [("PER", "Ana"), ("LOC", "Lund")]


def test_conll_bad_tag_for_scheme(tmp_path):
    path = conll(tmp_path, ["Ana\tPER", "och\tO", "Per\tB-PER", "", "Lund\tLOC"])
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "conll", tag_scheme="io")
    assert_names(err, path, 3)
    report, docs = run(tmp_path, path, "conll", tag_scheme="io", lenient=True)
    assert report["skipped"] == {"bad_tag": 1}
    assert ents(docs) == [("PER", "Ana"), ("LOC", "Lund")]
    # A BIO file needs prefixes.
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "conll", tag_scheme="bio")
    assert_names(err, path, 1)


def test_conll_io_with_zero_outside(tmp_path):
    # The Swedish corpus: "0" is outside, IO tags, some lines space-separated.
    path = conll(tmp_path, [
        "Anna\tPER", "Karin\tPER", "Svensson\tPER", "bor\t0", "i\t0", "Göteborg LOC", ".\t0",
        "",
        "Volvo   ORG", "ökar\t0", "0\t0", "procent\t0",
    ])
    report, docs = run(tmp_path, path, "conll", lang="sv", tag_scheme="io")
    assert report["skipped"] == {}
    # Adjacent IO tokens of one type are one entity.
    assert ents(docs) == [("PER", "Anna Karin Svensson"), ("LOC", "Göteborg"), ("ORG", "Volvo")]
    _, auto_docs = run(tmp_path, path, "conll", lang="sv")
    assert ents(auto_docs) == ents(docs)
    assert "0 procent" in docs[0].text  # a token "0" tagged "0" is kept as a word


def test_conll_bio_and_bilou(tmp_path):
    bio = conll(tmp_path, [
        "Ana\tB-PER", "Per\tB-PER", "Gómez\tI-PER", "en\tO", "Nueva\tB-LOC", "York\tI-LOC",
        "y\tO", "Madrid\tI-LOC",
    ], "bio.conll")
    _, docs = run(tmp_path, bio, "conll", tag_scheme="bio")
    # B-PER B-PER: two entities; an I- after O starts one.
    assert ents(docs) == [("PER", "Ana"), ("PER", "Per Gómez"), ("LOC", "Nueva York"), ("LOC", "Madrid")]
    _, auto_docs = run(tmp_path, bio, "conll")
    assert ents(auto_docs) == ents(docs)

    bilou = conll(tmp_path, [
        "Ana\tU-PER", "Per\tU-PER", "de\tO", "San\tB-LOC", "Juan\tI-LOC", "Sur\tL-LOC",
        "Eva\tB-PER", "Lo\tL-PER", "Rio\tS-LOC", "Mar\tE-LOC",
    ], "bilou.conll")
    _, docs = run(tmp_path, bilou, "conll", tag_scheme="bilou")
    assert ents(docs) == [
        ("PER", "Ana"), ("PER", "Per"), ("LOC", "San Juan Sur"), ("PER", "Eva Lo"),
        ("LOC", "Rio"), ("LOC", "Mar"),
    ]


def test_conll_sentences_and_sents_per_doc(tmp_path):
    lines = []
    for i in range(5):
        lines += [f"Ana{i}\tPER", "vive\tO", "en\tO", "Lund\tLOC", ".\tO", ""]
    path = conll(tmp_path, lines)
    report, docs = run(tmp_path, path, "conll", sents_per_doc=2)
    assert report["source_documents"] == report["documents"] == 3
    assert all(d.has_annotation("SENT_START") for d in docs)
    assert [len(list(d.sents)) for d in docs] == [2, 2, 1]
    assert [s.text for s in docs[0].sents] == ["Ana0 vive en Lund .", "Ana1 vive en Lund ."]
    assert report["entities"] == 10
    assert [d.user_data["id"] for d in docs] == ["c-00000", "c-00001", "c-00002"]

    _, one = run(tmp_path, path, "conll", sents_per_doc=10)
    assert len(one) == 1 and len(list(one[0].sents)) == 5


def test_conll_messages_never_echo_the_tag(tmp_path):
    # A space-separated 'Juan Pérez' line puts a name in the tag column.
    path = conll(tmp_path, ["Juan Pérez", "vive\tO", "x\tB-"])
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "conll", tag_scheme="bio")
    assert_names(err, path, 1)
    assert "Pérez" not in str(err.value)
    report, _ = run(tmp_path, path, "conll", tag_scheme="bio", lenient=True)
    assert report["skipped"] == {"bad_tag": 2}  # 'B-' has no label either


@pytest.mark.parametrize("sents_per_doc", [0, -1])
def test_conll_sents_per_doc_must_be_positive(tmp_path, sents_per_doc):
    path = conll(tmp_path, ["Ana\tPER"])
    with pytest.raises(CorpusError):  # 0 raised a bare ValueError from range()
        run(tmp_path, path, "conll", sents_per_doc=sents_per_doc)


def test_swedish_ner_missing_tag():
    path = DATA / "swedish-ner" / "train_corpus.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with pytest.raises(CorpusError) as err:
        list(read_corpus(path, "conll", Problems()))
    assert_names(err, path)
    line = int(str(err.value).split(f"{path.name}:")[1].split(":")[0])
    assert 90000 < line < 90600
    problems = Problems(lenient=True)
    records = list(read_corpus(path, "conll", problems))
    assert dict(problems.counts) == {"missing_tag": 1}
    assert problems.where["missing_tag"] == [f"{path}:{line}"]
    labels = {s.label for r in records for s in r.spans}
    assert labels == {"PER", "LOC", "ORG", "MISC"}
    assert sum(len(r.sent_starts) for r in records) == 6885


@pytest.mark.parametrize("kind", sorted(JSONL_CASES))
def test_jsonl_malformed_strict_and_lenient(tmp_path, kind):
    path = jsonl(tmp_path, JSONL_CASES[kind])
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path, 2)
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {kind: 1}
    assert all(w.startswith(f"{path}:2") for w in report["skipped_where"][kind])
    expected = [("NOMBRE", "Juan Pérez")] * 2
    if kind == "offset_out_of_range":  # the doc and its good span are kept
        expected.insert(1, ("LOC", "Lund"))
    assert ents(docs) == expected
    assert len(docs) == (2 if kind == "malformed_line" else 3)


def test_jsonl_line_separators_inside_strings(tmp_path):
    # json.dumps(ensure_ascii=False) leaves NEL and U+2028 raw: str.splitlines() cut such a
    # record in two (two malformed lines) and shifted every later line number.
    path = tmp_path / "sep.jsonl"
    records = [{"text": "Ana\x85vive\u2028en Lund.", "spans": [{"start": 0, "end": 3, "label": "PER"}]},
               {"text": "Sin datos.", "spans": []}, '{"text": "Ana", "spans": [']
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records),
                    encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path, 3)
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {"malformed_line": 1}
    assert docs[0].text == records[0]["text"] and ents(docs) == [("PER", "Ana")]


@pytest.mark.parametrize("span", [
    {"start": 0.7, "end": 3, "label": "PER"},  # int() truncated floats
    {"start": True, "end": 3, "label": "PER"},  # and took true as 1
    {"start": "0", "end": 3, "label": "PER"},  # and "0" as 0
    {"start": 0, "end": 3, "label": None},  # str(None) became the label "None"
    {"start": 0, "end": 3, "label": ""},
    {"start": 0, "end": 3},
    "0-3",
])
def test_jsonl_span_wrong_types_are_not_cast(tmp_path, span):
    path = jsonl(tmp_path, json.dumps({"text": "Ana vive.", "spans": [span]}))
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path, 2)
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {"bad_span": 1}
    assert len(docs) == 3


@pytest.mark.parametrize("line", [
    '{"text": "Ana", "spans": 5}',  # TypeError escaped
    '{"text": "Ana", "spans": {"start": 0}}',
    '{"text": "Ana", "spans": [{"start": 0, "end": Infinity, "label": "X"}]}',  # OverflowError escaped
    '{"text": "Ana", "n": ' + "9" * 5000 + "}",  # ValueError (digit limit) escaped
    "[" * 100000 + "]" * 100000,  # RecursionError escaped
    '{"text": "Ana \\ud800", "spans": []}',  # a lone surrogate: UnicodeEncodeError in spaCy
    '{"text": "Ana", "id": {"a": 1}, "spans": []}',
])
def test_jsonl_unreadable_records_are_corpus_errors(tmp_path, line):
    path = jsonl(tmp_path, line)
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path, 2)
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert sum(report["skipped"].values()) == 1
    assert len(docs) == (3 if "bad_span" in report["skipped"] else 2)  # a bad span keeps its record


@pytest.mark.parametrize("key, value", [
    ("entities", [{"start_offset": 0, "end_offset": 3, "label": "PER"}]),  # doccano
    ("label", [[0, 3, "PER"]]),  # doccano, older
    ("ents", [{"start": 0, "end": 3, "label": "PER"}]),
])
def test_jsonl_spans_under_another_key_fail(tmp_path, key, value):
    # Issue 12: these converted to 0 entities with a success mark.
    path = jsonl(tmp_path, json.dumps({"text": "Ana vive.", key: value}))
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path, 2)
    assert f"'{key}'" in str(err.value)
    report, _ = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {"spans_under_other_key": 1}


def test_jsonl_and_conll_ignore_a_leading_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_text("\ufeff" + json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    _, docs = run(tmp_path, path, "jsonl")
    assert ents(docs) == [("NOMBRE", "Juan Pérez")]
    path = tmp_path / "bom.conll"
    path.write_text("\ufeffAna\tPER\nvive\tO\n", encoding="utf-8")
    _, docs = run(tmp_path, path, "conll")
    assert docs[0].text == "Ana vive" and ents(docs) == [("PER", "Ana")]
