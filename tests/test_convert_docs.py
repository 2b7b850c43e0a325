"""Records to Docs: the misaligned-span policies, sentence and chunk splitting (a cut never inside
an entity), and the clinical tokenizer the conversion uses."""
import json

import pytest
import spacy

from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.docs import record_to_doc, split_doc
from deid_synthesis.corpus.records import CorpusError, Record, SpanRecord
from convert_support import nlp, ents, run, assert_names  # noqa: F401  (nlp: a fixture)

MIS_TEXT = "Mujer de 45 añosingresó ayer en Lund."


def misaligned_file(tmp_path):
    start = MIS_TEXT.index("45 años")
    lund = MIS_TEXT.index("Lund")
    path = tmp_path / "m.jsonl"
    lines = [
        json.dumps({"text": "Sin datos.", "spans": []}),
        json.dumps({"text": MIS_TEXT, "spans": [
            {"start": start, "end": start + 7, "label": "EDAD"},
            {"start": lund, "end": lund + 4, "label": "TERRITORIO"},
        ]}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("policy, expected", [
    ("split", [("EDAD", "45 años"), ("TERRITORIO", "Lund")]),
    ("expand", [("EDAD", "45 añosingresó"), ("TERRITORIO", "Lund")]),
    ("contract", [("EDAD", "45"), ("TERRITORIO", "Lund")]),
    ("skip", [("TERRITORIO", "Lund")]),
])
def test_misaligned_policies(tmp_path, policy, expected):
    path = misaligned_file(tmp_path)
    report, docs = run(tmp_path, path, "jsonl", misaligned=policy)
    assert ents(docs) == expected
    assert len(report["misaligned"]) == 1
    entry = report["misaligned"][0]
    assert entry["where"].startswith(f"{path}:2")
    assert entry["label"] == "EDAD"
    assert entry["action"] == policy
    dumped = json.dumps(report, ensure_ascii=False)
    for secret in (MIS_TEXT, "añosingresó", "45 años", "Lund."):
        assert secret not in dumped
    if policy == "split":
        assert docs[1].text == MIS_TEXT
        assert [t.text for t in docs[1]][3:5] == ["años", "ingresó"]


def test_misaligned_error(tmp_path):
    path = misaligned_file(tmp_path)
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl", misaligned="error")
    assert_names(err, path, 2)
    assert "EDAD" in str(err.value)
    assert "años" not in str(err.value)


SPLIT_TEXT = (
    "El paciente Juan Carlos Pérez García de la Fuente ingresó ayer en el Hospital "
    "Universitario La Paz de Madrid. Le atendió la Dra. Ana López en urgencias. Vive en la "
    "calle del Abedul 5 con su esposa y dos hijos pequeños. Alta el 3 de marzo de 2019."
)


SPLIT_ENTS = [
    ("Juan Carlos Pérez García de la Fuente", "NOMBRE"),  # 7 words: longer than max_words
    ("Hospital Universitario La Paz", "HOSPITAL"),
    ("Madrid", "TERRITORIO"),
    ("Dra. Ana López", "NOMBRE_PERSONAL_SANITARIO"),  # a sentencizer would cut after "Dra."
    ("calle del Abedul 5", "CALLE"),
    ("3 de marzo de 2019", "FECHAS"),
]


@pytest.fixture()
def split_source(nlp):
    spans = []
    for sub, label in SPLIT_ENTS:
        start = SPLIT_TEXT.index(sub)
        spans.append(SpanRecord(start, start + len(sub), label, "t:1"))
    doc = record_to_doc(nlp, Record("src", SPLIT_TEXT, spans, "t"))
    assert [(e.text, e.label_) for e in doc.ents] == SPLIT_ENTS
    return doc


@pytest.mark.parametrize("mode", ["sentences", "chunks"])
@pytest.mark.parametrize("max_words", [5, 12, 128])
def test_split_doc_keeps_entities(split_source, mode, max_words):
    pieces = list(split_doc(split_source, mode, max_words))
    if (mode, max_words) == ("chunks", 128):
        assert len(pieces) == 1
    else:
        assert len(pieces) > 1
    found = []
    for piece in pieces:
        assert piece.user_data["source_id"] == "src"
        offset = piece.user_data["char_offset"]
        assert SPLIT_TEXT[offset : offset + len(piece.text)] == piece.text
        longest = max([count_words(e) for e in piece.ents], default=0)
        assert count_words(piece) <= max(max_words, longest)
        if count_words(piece) > max_words:  # only a too-long entity, alone
            assert len(piece.ents) == 1 and count_words(piece) == longest
        for ent in piece.ents:
            start = offset + ent.start_char
            assert SPLIT_TEXT[start : start + len(ent.text)] == ent.text
            found.append((start, ent.text, ent.label_))
    expected = [(e.start_char, e.text, e.label_) for e in split_source.ents]
    assert found == expected
    # Pieces cover the text in order, without overlap.
    offsets = [p.user_data["char_offset"] for p in pieces]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_split_sentences_and_chunks_differ(split_source):
    sents = list(split_doc(split_source, "sentences", 128))
    assert len(sents) == 4  # "Dra." does not end a sentence inside the entity
    chunks = list(split_doc(split_source, "chunks", 128))
    assert len(chunks) == 1 and chunks[0].text == SPLIT_TEXT
    assert list(split_doc(split_source, "none")) == [split_source]
    with pytest.raises(CorpusError):
        list(split_doc(split_source, "paragraphs"))


def test_convert_with_chunks(tmp_path):
    path = tmp_path / "s.jsonl"
    spans = []
    for sub, label in SPLIT_ENTS:
        start = SPLIT_TEXT.index(sub)
        spans.append({"start": start, "end": start + len(sub), "label": label})
    path.write_text(json.dumps({"id": "d1", "text": SPLIT_TEXT, "spans": spans}) + "\n", encoding="utf-8")
    report, docs = run(tmp_path, path, "jsonl", split="chunks", max_words=5)
    assert report["entities"] == report["source_spans"] == len(SPLIT_ENTS)
    assert report["documents"] == len(docs) > 1
    assert [d.user_data["source_id"] for d in docs] == ["d1"] * len(docs)
    assert ents(docs) == [(label, sub) for sub, label in SPLIT_ENTS]


@pytest.mark.parametrize("text, tokens", [
    ("NHC:7984385", ["NHC", ":", "7984385"]),
    ("Sexo: H.", ["Sexo", ":", "H", "."]),
    ("c/ del Abedul 5-7", ["c", "/", "del", "Abedul", "5", "-", "7"]),
    ("MartínezNºCol", ["Martínez", "Nº", "Col"]),
    ("DRAlberto", ["DR", "Alberto"]),
    ("Dr. Pérez", ["Dr", ".", "Pérez"]),
])
def test_clinical_tokenizer(nlp, text, tokens):
    assert [t.text for t in nlp.make_doc(text)] == tokens


def test_tokenizer_option(nlp):
    plain = spacy.blank("es", config={"nlp": {"tokenizer": {
        "@tokenizers": "deid.clinical_tokenizer.v1", "split_camel_case": False}}})
    assert [t.text for t in plain.make_doc("MartínezNºCol")] == ["MartínezNºCol"]
