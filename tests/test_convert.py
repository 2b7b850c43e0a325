"""Tests of the corpus conversion: readers (BRAT, CoNLL, JSONL), their errors and lenient
mode, the BOM trap, misaligned-span policies, splitting into sentences / chunks, the
clinical tokenizer, dev hold-out, the real corpora and the CLI.

Small corpora are written to tmp_path; the real ones are read from ../shared/data and
their text is never printed (assertions compare counts, file names and line numbers).
"""
import json
from pathlib import Path

import pytest
import spacy
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

from deid_synthesis.corpus.convert import convert, make_nlp
from scripts.convert import main
from deid_synthesis.corpus.readers import read_corpus
from deid_synthesis.corpus.records import CorpusError, Problems, Record, SpanRecord
from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.docs import record_to_doc, split_doc
from deid_synthesis.corpus.prepare import prepare

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="module")
def nlp():
    return make_nlp("es")


def load(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))


def ents(docs):
    return [(e.label_, e.text) for d in docs for e in d.ents]


def run(tmp_path, src, fmt, **kwargs):
    out = tmp_path / "out.spacy"
    report = convert(src, out, fmt, kwargs.pop("lang", "es"), **kwargs)
    return report, load(out)


def assert_names(err, path, line=None):
    message = str(err.value)
    assert Path(path).name in message
    if line is not None:
        assert f"{Path(path).name}:{line}" in message


# --- BRAT -----------------------------------------------------------------------------

GOOD_TXT = "Paciente Juan Pérez, de 45 años.\n"
GOOD_ANN = "T1\tNOMBRE 9 19\tJuan Pérez\nT2\tEDAD 24 31\t45 años\n"
BAD_TXT = "Vive en Madrid con Ana.\n"  # Madrid 8-14, Ana 19-22


def brat(tmp_path, bad_ann, bad_txt=BAD_TXT, encoding="utf-8"):
    folder = tmp_path / "brat"
    folder.mkdir()
    (folder / "a_good.txt").write_text(GOOD_TXT, encoding="utf-8")
    (folder / "a_good.ann").write_text(GOOD_ANN, encoding="utf-8")
    (folder / "b_bad.txt").write_bytes(bad_txt.encode(encoding))
    if bad_ann is not None:
        (folder / "b_bad.ann").write_bytes(bad_ann.encode(encoding))
    return folder


BRAT_CASES = {
    # kind: (.ann of the bad file, line of the bad item)
    "offset_out_of_range": ("T1\tTERRITORIO 8 14\tMadrid\nT2\tNOMBRE 19 99\tAna\n", 2),
    "text_mismatch": ("T1\tTERRITORIO 8 14\tMadrid\nT2\tNOMBRE 18 21\tAna\n", 2),
    "overlapping_span": ("T1\tTERRITORIO 8 14\tMadrid\nT2\tOTRO 11 14\trid\n", 2),
    "malformed_line": ("T1\tTERRITORIO 8 14\tMadrid\nT2\tNOMBRE 19 22\n", 2),
    "discontinuous_span": ("T1\tTERRITORIO 8 14\tMadrid\n#1\tnote T1\tok\nT2\tNOMBRE 0 4;19 22\tVive Ana\n", 3),
}


@pytest.mark.parametrize("kind", sorted(BRAT_CASES))
def test_brat_malformed_strict_and_lenient(tmp_path, kind):
    ann, line = BRAT_CASES[kind]
    folder = brat(tmp_path, ann)
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    assert_names(err, folder / "b_bad.ann", line)
    assert not (tmp_path / "out.spacy").exists()  # no half-written corpus

    report, docs = run(tmp_path, folder, "brat", lenient=True)
    assert report["skipped"] == {kind: 1}
    assert report["skipped_where"][kind] == [f"{folder / 'b_bad.ann'}:{line}"]
    assert len(docs) == 2
    assert ents(docs) == [("NOMBRE", "Juan Pérez"), ("EDAD", "45 años"), ("TERRITORIO", "Madrid")]


def test_brat_missing_ann(tmp_path):
    folder = brat(tmp_path, None)
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    assert_names(err, folder / "b_bad.txt")
    report, docs = run(tmp_path, folder, "brat", lenient=True)
    assert report["skipped"] == {"missing_ann": 1}
    assert report["source_documents"] == 1
    assert ents(docs) == [("NOMBRE", "Juan Pérez"), ("EDAD", "45 años")]


def test_wrong_encoding_names_file_and_line(tmp_path):
    text = "Primera linea.\nJosé vive en Madrid.\n"  # José 15-19, Madrid 28-34
    ann = "T1\tNOMBRE 15 19\tJosé\nT2\tTERRITORIO 28 34\tMadrid\n"
    folder = brat(tmp_path, ann, bad_txt=text, encoding="latin-1")
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    # The first undecodable byte is the é of José, on line 2 of the .txt.
    assert_names(err, folder / "b_bad.txt", 2)
    assert "utf-8" in str(err.value)
    # The encoding applies to every file of the folder: keep only the latin-1 one.
    (folder / "a_good.txt").unlink()
    (folder / "a_good.ann").unlink()
    report, docs = run(tmp_path, folder, "brat", encoding="latin-1")
    assert ents(docs) == [("NOMBRE", "José"), ("TERRITORIO", "Madrid")]
    assert report["skipped"] == {}


def test_unknown_encoding_name(tmp_path):
    path = tmp_path / "c.conll"
    path.write_text("Ana\tPER\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "conll", encoding="no-such-codec")
    assert_names(err, path)
    assert "no-such-codec" in str(err.value)


def test_missing_input_path(tmp_path):
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, "jsonl")
    assert_names(err, path)


def test_brat_bom_offsets(tmp_path):
    # MEDDOCAN: the .txt starts with a BOM and the .ann offsets count it as a character.
    folder = tmp_path / "bom"
    folder.mkdir()
    text = "\ufeffNombre: Juan Pérez. Sexo: H."
    start = text.index("Juan")
    h = text.index("H.")
    (folder / "d.txt").write_bytes(text.encode("utf-8"))
    (folder / "d.ann").write_text(
        f"T1\tNOMBRE {start} {start + 10}\tJuan Pérez\nT2\tSEXO {h} {h + 1}\tH\n", encoding="utf-8"
    )
    report, docs = run(tmp_path, folder, "brat")
    assert report["skipped"] == {} and report["misaligned"] == []
    assert ents(docs) == [("NOMBRE", "Juan Pérez"), ("SEXO", "H")]
    assert docs[0].text == text  # the BOM is kept, so offsets stay right


# --- CoNLL ----------------------------------------------------------------------------


def conll(tmp_path, lines, name="c.conll"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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


# --- JSONL ----------------------------------------------------------------------------

JSONL_GOOD = {"id": "g", "text": "Paciente Juan Pérez.", "spans": [{"start": 9, "end": 19, "label": "NOMBRE"}]}


def jsonl(tmp_path, bad_line, name="d.jsonl"):
    path = tmp_path / name
    lines = [json.dumps(JSONL_GOOD), bad_line, json.dumps({**JSONL_GOOD, "id": "h"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


JSONL_CASES = {
    "malformed_line": '{"text": "Ana", "spans": [',
    "offset_out_of_range": json.dumps(
        {"text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC"},
                                            {"start": 8, "end": 40, "label": "LOC"}]}),
    "text_mismatch": json.dumps(
        {"text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC", "text": "Lun"}]}),
}


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


# --- Misaligned spans -----------------------------------------------------------------

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


# --- Splitting ------------------------------------------------------------------------

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


# --- Tokenizer ------------------------------------------------------------------------


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


# --- prepare(): dev hold-out ----------------------------------------------------------


def test_prepare_holds_out_dev(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    def write(name, n):
        with (data / name).open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"{name}-{i}", "text": f"Paciente {i} en Lund.",
                                    "spans": [{"start": 13 + len(str(i)), "end": 17 + len(str(i)), "label": "LOC"}]}) + "\n")
    write("train.jsonl", 20)
    write("test.jsonl", 3)

    def dev_ids(out, seed):
        reports = prepare(data, out, "jsonl", "es", dev_share=0.2, seed=seed)
        assert reports["dev"] == {"held_out_from_train": {"train": 16, "dev": 4}, "seed": seed}
        train, dev, test = (load(out / f"{s}.spacy") for s in ("train", "dev", "test"))
        assert (len(train), len(dev), len(test)) == (16, 4, 3)
        ids_train = {d.user_data["id"] for d in train}
        ids_dev = {d.user_data["id"] for d in dev}
        assert not ids_train & ids_dev
        assert ids_train | ids_dev == {f"train.jsonl-{i}" for i in range(20)}
        assert all(len(d.ents) == 1 for d in train + dev)
        assert json.loads((out / "report.json").read_text())["dev"]["seed"] == seed
        return ids_dev

    first = dev_ids(tmp_path / "out1", 7)
    assert dev_ids(tmp_path / "out2", 7) == first
    others = [dev_ids(tmp_path / f"out{s}", s) for s in range(3)]
    assert any(ids != first for ids in others)


def test_prepare_needs_train_and_test(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "test" in str(err.value)


# --- Real corpora ---------------------------------------------------------------------


@pytest.mark.slow
def test_meddocan_counts(tmp_path):
    root = DATA / "meddocan"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    expected = {"train": (500, 11333), "dev": (250, 5801), "test": (250, 5661)}
    for split, (n_docs, n_ents) in expected.items():
        report = convert(root / split, tmp_path / f"{split}.spacy", "brat", "es")
        assert report["skipped"] == {}
        assert (report["source_documents"], report["documents"]) == (n_docs, n_docs)
        assert report["source_spans"] == report["entities"] == n_ents
        assert all(m["action"] == "split" for m in report["misaligned"])
        if split == "train":
            assert report["entities_per_label"]["TERRITORIO"] == 1875
            assert report["entities_per_label"]["FECHAS"] == 1231
    # Spot check of the BOM trap on the real data: entity texts equal the .ann strings.
    docs = load(tmp_path / "train.spacy")
    bom_ids = {p.stem for p in (root / "train").glob("*.txt") if p.read_bytes().startswith(b"\xef\xbb\xbf")}
    assert bom_ids
    checked, wrong = 0, []  # document ids only: never show the corpus's text
    for doc in docs:
        if doc.user_data["id"] not in bom_ids:
            continue
        ann = (root / "train" / f"{doc.user_data['id']}.ann").read_text(encoding="utf-8")
        gold = [line.split("\t")[2] for line in ann.splitlines() if line.startswith("T")]
        if sorted(e.text for e in doc.ents) != sorted(gold):
            wrong.append(doc.user_data["id"])
        checked += 1
    assert wrong == []
    assert checked == len(bom_ids)


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


# --- CLI ------------------------------------------------------------------------------


def cli():
    app = typer.Typer()
    app.command()(main)
    return app


def test_cli_fails_on_malformed_file(tmp_path):
    path = jsonl(tmp_path, JSONL_CASES["malformed_line"], name="broken.jsonl")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(cli(), [str(path), str(out), "--format", "jsonl", "--lang", "es"])
    assert result.exit_code == 1
    assert "broken.jsonl:2" in result.output
    assert not out.exists()


def test_cli_lenient_writes_report(tmp_path):
    path = jsonl(tmp_path, JSONL_CASES["malformed_line"], name="broken.jsonl")
    out = tmp_path / "out.spacy"
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(cli(), [str(path), str(out), "-f", "jsonl", "-l", "es", "--lenient",
                                        "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["skipped"] == {"malformed_line": 1}
    assert report["entities"] == 2
    assert len(load(out)) == 2


# --- Regressions found by fuzzing (tests/test_convert_fuzz.py) --------------------------


def one_brat(tmp_path, text, ann):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "x.txt").write_text(text, encoding="utf-8")
    (folder / "x.ann").write_text(ann, encoding="utf-8")
    return folder


@pytest.mark.parametrize("ann", [
    "T1\tNOMBRE \u00b2 3\tAn\n",  # '²'.isdigit() is True but int('²') raised a bare ValueError
    "T1\tNOMBRE 0 " + "9" * 5000 + "\tAn\n",  # int() past Python's digit limit
    "T1\t 0 3\tAna\n",  # an empty label became an entity spaCy silently dropped
])
def test_brat_bad_offsets_and_labels_are_corpus_errors(tmp_path, ann):
    folder = one_brat(tmp_path, "Ana vive.\n", ann)
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    assert_names(err, folder / "x.ann", 1)
    report, _ = run(tmp_path, folder, "brat", lenient=True)
    assert report["skipped"] == {"malformed_line": 1}


def test_brat_annotated_text_with_tab_and_line_separator(tmp_path):
    # A tab in the annotated string split the line in four; U+2028 split it in two.
    text = "Ana\tMaría\u2028Pérez vive.\n"
    ann = "T1\tNOMBRE 0 9\tAna\tMaría\nT2\tNOMBRE 10 15\tPérez\n"
    report, docs = run(tmp_path, one_brat(tmp_path, text, ann), "brat")
    assert report["skipped"] == {}
    assert [(e.label_, e.start_char, e.end_char) for e in docs[0].ents] == [("NOMBRE", 0, 9), ("NOMBRE", 10, 15)]


def test_brat_lenient_skips_undecodable_file(tmp_path):
    folder = brat(tmp_path, "T1\tTERRITORIO 8 14\tMadrid\n", bad_txt="Vive en Madrid, José.\n", encoding="latin-1")
    report, docs = run(tmp_path, folder, "brat", lenient=True)
    assert report["skipped"] == {"undecodable_file": 1}
    assert report["skipped_where"]["undecodable_file"] == [str(folder / "b_bad.txt")]
    assert len(docs) == 1


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


def test_zero_entities_warns(tmp_path, capsys):
    from deid_synthesis.corpus.convert import print_report
    path = tmp_path / "none.jsonl"
    path.write_text(json.dumps({"text": "Ana vive."}) + "\n", encoding="utf-8")
    report, _ = run(tmp_path, path, "jsonl")
    assert report["entities"] == 0 and report["warnings"]
    print_report(report)
    assert "no entities" in capsys.readouterr().out
    _, _ = run(tmp_path, jsonl(tmp_path, json.dumps(JSONL_GOOD)), "jsonl")


def test_jsonl_and_conll_ignore_a_leading_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_text("\ufeff" + json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    _, docs = run(tmp_path, path, "jsonl")
    assert ents(docs) == [("NOMBRE", "Juan Pérez")]
    path = tmp_path / "bom.conll"
    path.write_text("\ufeffAna\tPER\nvive\tO\n", encoding="utf-8")
    _, docs = run(tmp_path, path, "conll")
    assert docs[0].text == "Ana vive" and ents(docs) == [("PER", "Ana")]


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


def test_prepare_failure_leaves_the_old_corpus_whole(tmp_path):
    # The train part used to be written (and the old one replaced) before the test part failed.
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    prepare(data, out, "jsonl", "es")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (data / "train.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n" + json.dumps({**JSONL_GOOD, "id": "t2"}) + "\n")
    (data / "test.jsonl").write_text('{"text": "Ana", "spans": [\n', encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare(data, out, "jsonl", "es")
    assert_names(err, data / "test.jsonl", 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either


def test_prepare_hold_out_needs_two_documents(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:  # one document went to dev, train was left empty
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "train.spacy" in str(err.value)
    assert not (tmp_path / "out" / "train.spacy").exists()
