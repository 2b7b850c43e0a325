"""Conversion of BRAT standoff folders: malformed lines strict and lenient, encodings, the BOM trap,
and the regressions the fuzz tests (test_convert_fuzz.py) found."""
import pytest

from deid_synthesis.corpus.records import CorpusError
from convert_support import ents, run, assert_names, brat, one_brat

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
