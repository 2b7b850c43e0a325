"""Pseudonymizing a machine-annotated synthetic corpus: surrogates in, labels moved with them."""
import re

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.io import DataError
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.pseudonymize_corpus import pseudonymize_corpus

KEY = bytes(range(7, 39))
TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}
CHUNKS = [  # (source_id, chunk, text, [(label, string)])
    ("n1", 0, "Paciente: Ana García López. Sexo: M. Edad: 45 años.",
     [("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"), ("SEXO_SUJETO_ASISTENCIA", "M"),
      ("EDAD_SUJETO_ASISTENCIA", "45 años")]),
    ("n1", 1, "Ingresa el 12/03/2019 en el Hospital Universitario de Getafe; vive en Getafe.",
     [("FECHAS", "12/03/2019"), ("HOSPITAL", "Hospital Universitario de Getafe"), ("TERRITORIO", "Getafe")]),
    ("n2", 0, "Remitido por el Dr. Ignacio Ballesteros. NHC: 7984385.",
     [("NOMBRE_PERSONAL_SANITARIO", "Ignacio Ballesteros"), ("ID_SUJETO_ASISTENCIA", "7984385")]),
]


def make_doc(nlp, source, chunk, text, ents):
    doc, spans, pos = nlp.make_doc(text), [], 0
    for label, string in ents:  # in order of the text
        pos = text.index(string, pos)
        spans.append(doc.char_span(pos, pos + len(string), label=label))
        pos += len(string)
    doc.ents = spans
    doc.user_data.update({"id": f"{source}#{chunk}", "source_id": source, "chunk": chunk,
                          "provenance": {"prompt_id": source}})
    return doc


@pytest.fixture
def corpus(tmp_path):
    nlp = spacy.blank("es", config=TOKENIZER)
    folder = tmp_path / "synthetic-r"
    folder.mkdir()
    # Chunks out of order in the file: the notes are rebuilt in chunk order.
    for part, rows in (("train.spacy", [CHUNKS[1], CHUNKS[0]]), ("dev.spacy", [CHUNKS[2]])):
        docbin = DocBin(store_user_data=True)
        for row in rows:
            docbin.add(make_doc(nlp, *row))
        docbin.to_disk(folder / part)
    srsly.write_json(folder / "annotate.json", {"input": str(tmp_path / "gen" / "samples.jsonl"), "seed": 0})
    (tmp_path / "gen").mkdir()
    srsly.write_json(tmp_path / "gen" / "report.json", {"kept": 2})
    return nlp, folder


def test_surrogates_replace_the_annotated_phi_and_keep_their_labels(corpus, tmp_path):
    nlp, folder = corpus
    out = tmp_path / "synthetic-r-pseudo"
    report = pseudonymize_corpus(nlp, folder, out, seed=1, samples_output=tmp_path / "gen-pseudo" / "samples.jsonl")
    docs = [*DocBin().from_disk(out / "train.spacy").get_docs(nlp.vocab),
            *DocBin().from_disk(out / "dev.spacy").get_docs(nlp.vocab)]
    originals = {s for *_, ents in CHUNKS for label, s in ents if label != "SEXO_SUJETO_ASISTENCIA"}
    for doc, (source, chunk, _, ents) in zip(docs, [CHUNKS[1], CHUNKS[0], CHUNKS[2]]):
        assert [e.label_ for e in doc.ents] == [label for label, _ in ents]
        assert doc.user_data["source_id"] == source and doc.user_data["pseudonymized"] is True
        for ent in doc.ents:
            assert ent.text not in originals
        left = [o for o in originals if re.search(rf"(?<!\w){re.escape(o)}(?!\w)", doc.text)]
        assert not left, left
    # Sex has no surrogate: kept as it is, still labelled.
    assert [e.text for e in docs[1].ents if e.label_ == "SEXO_SUJETO_ASISTENCIA"] == ["M"]
    done = report["pseudonymized"]
    assert done["replaced"] == 7 and done["misaligned"] == 0 and done["per_label"]["TERRITORIO"] == 1
    assert srsly.read_json(out / "annotate.json")["pseudonymized"] == done
    # The notes for `privacy`: chunks joined in order, one line per note, the generation report beside.
    notes = list(srsly.read_jsonl(tmp_path / "gen-pseudo" / "samples.jsonl"))
    assert [n["id"] for n in notes] == ["n1", "n2"] and notes[0]["prompt_id"] == "n1"
    assert notes[0]["text"] == docs[1].text + " " + docs[0].text
    assert srsly.read_json(tmp_path / "gen-pseudo" / "report.json") == {"kept": 2}


def test_bad_folders_are_named(corpus, tmp_path):
    nlp, folder = corpus
    with pytest.raises(CorpusError, match="output folder is the input folder"):
        pseudonymize_corpus(nlp, folder, folder)
    (folder / "dev.spacy").unlink()
    with pytest.raises(CorpusError, match=r"dev\.spacy: no such file"):
        pseudonymize_corpus(nlp, folder, tmp_path / "out")
    (folder / "dev.spacy").write_bytes(b"not a docbin")
    with pytest.raises(DataError, match=r"dev\.spacy: not a readable DocBin"):
        pseudonymize_corpus(nlp, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_no_surrogate_is_a_real_phi_string(corpus, tmp_path):
    """With --gold, the surrogates drawn without it (same key) are real PHI strings now:
    none of them may come back."""
    nlp, folder = corpus
    first = pseudonymize_corpus(nlp, folder, tmp_path / "a", key=KEY)
    drawn = {e.text for doc in DocBin().from_disk(tmp_path / "a" / "train.spacy").get_docs(nlp.vocab)
             for e in doc.ents if e.label_ in ("NOMBRE_SUJETO_ASISTENCIA", "TERRITORIO", "FECHAS")}
    gold = DocBin()
    doc = nlp.make_doc(" ; ".join(sorted(drawn)))
    doc.ents = [doc.char_span(doc.text.index(t), doc.text.index(t) + len(t), label="X") for t in sorted(drawn)]
    gold.add(doc)
    gold.to_disk(tmp_path / "gold.spacy")
    second = pseudonymize_corpus(nlp, folder, tmp_path / "b", key=KEY, gold_paths=[tmp_path / "gold.spacy"])
    texts = " ".join(d.text for d in DocBin().from_disk(tmp_path / "b" / "train.spacy").get_docs(nlp.vocab))
    assert [t for t in drawn if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", texts)] == []
    assert second["pseudonymized"]["gold_strings_avoided"] == len(drawn) and first["pseudonymized"]["gold_strings_avoided"] == 0


def _texts(path, nlp):
    return [d.text for part in ("train.spacy", "dev.spacy") for d in DocBin().from_disk(path / part).get_docs(nlp.vocab)]


def test_surrogates_are_keyed_and_random_without_a_key(corpus, tmp_path, monkeypatch):
    """A given key reproduces the run; without one each run draws its own key and stores it
    nowhere, so nobody can recompute the released surrogates from candidate originals."""
    nlp, folder = corpus
    first = pseudonymize_corpus(nlp, folder, tmp_path / "a", key=KEY)
    pseudonymize_corpus(nlp, folder, tmp_path / "b", key=KEY)
    assert _texts(tmp_path / "a", nlp) == _texts(tmp_path / "b", nlp) and first["pseudonymized"]["key"] == "given"
    third = pseudonymize_corpus(nlp, folder, tmp_path / "c")
    pseudonymize_corpus(nlp, folder, tmp_path / "d")
    assert _texts(tmp_path / "c", nlp) != _texts(tmp_path / "d", nlp)
    assert third["pseudonymized"]["key"].startswith("random")
    written = b"".join(f.read_bytes() for d in "abcd" for f in (tmp_path / d).iterdir())
    assert KEY not in written and KEY.hex().encode() not in written
    # The command line: the key from --key-file or the environment, a bad one named, never shown.
    from typer.testing import CliRunner
    import typer
    from scripts.pseudonymize_corpus import main

    app = typer.Typer()
    app.command()(main)
    (tmp_path / "short.key").write_text("0123abcd")
    res = CliRunner().invoke(app, ["x", str(folder), str(tmp_path / "e"), "--key-file", str(tmp_path / "short.key")])
    assert res.exit_code == 1 and "short.key" in res.output and "0123abcd" not in res.output


def _gold(nlp, path, rows):
    """A gold DocBin: one document per (text, [(label, string)])."""
    gold = DocBin()
    for text, ents in rows:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(text.index(s), text.index(s) + len(s), label=label) for label, s in ents]
        gold.add(doc)
    gold.to_disk(path)


def test_the_second_pass_replaces_real_phi_the_annotator_missed(corpus, tmp_path):
    """Real identifying strings outside the annotator's spans are replaced with a surrogate of
    their gold kind and labelled (with the other forms of the name in that chunk); what is left
    elsewhere is counted by form (verbatim 0; other case; a partial name), never shown."""
    nlp, folder = corpus
    missed = ("n3", 0, "Control: Rosa Beltrán Ferrer acude con su hija; ROSA BELTRÁN FERRER firma. Beltrán.",
              [("FAMILIARES_SUJETO_ASISTENCIA", "hija")])
    elsewhere = ("n4", 0, "Llamó rosa beltran ferrer. Ferrer vuelve el lunes.", [])
    docbin = DocBin(store_user_data=True).from_disk(folder / "dev.spacy")
    docbin.add(make_doc(nlp, *missed))
    docbin.add(make_doc(nlp, *elsewhere))
    docbin.to_disk(folder / "dev.spacy")
    _gold(nlp, tmp_path / "gold.spacy", [
        ("Paciente Rosa Beltrán Ferrer con su hija.", [("NOMBRE_SUJETO_ASISTENCIA", "Rosa Beltrán Ferrer"),
                                                       ("FAMILIARES_SUJETO_ASISTENCIA", "hija")]),
        ("Vive con su hija en Getafe.", [("FAMILIARES_SUJETO_ASISTENCIA", "hija"), ("TERRITORIO", "Getafe")]),
    ])
    report = pseudonymize_corpus(nlp, folder, tmp_path / "out", key=KEY, gold_paths=[tmp_path / "gold.spacy"],
                                 samples_output=tmp_path / "notes.jsonl")
    docs = {d.user_data["source_id"]: d for d in DocBin().from_disk(tmp_path / "out" / "dev.spacy").get_docs(nlp.vocab)}
    note = docs["n3"]
    assert "Beltrán" not in note.text and "BELTRÁN" not in note.text
    assert [e.label_ for e in note.ents] == ["NOMBRE_SUJETO_ASISTENCIA", "FAMILIARES_SUJETO_ASISTENCIA",
                                             "NOMBRE_SUJETO_ASISTENCIA", "NOMBRE_SUJETO_ASISTENCIA"]
    assert note.ents[1].text == "hija"  # common: not identifying, the annotator's span moved with the text
    done = report["pseudonymized"]
    assert done["second_pass"]["per_label"] == {"NOMBRE_SUJETO_ASISTENCIA": 3} and done["second_pass"]["misaligned"] == 0
    assert done["left"]["occurrences"] == {"verbatim": 0, "near": 1, "partial": 1}
    assert done["left"]["notes"] == {"verbatim": 0, "near": 1, "partial": 1}
    written = (tmp_path / "notes.jsonl").read_text() + srsly.json_dumps(report)
    assert "Rosa Beltrán Ferrer" not in written and "Getafe" not in srsly.json_dumps(report)


def test_shifted_moves_offsets_with_the_replacements():
    from deid_synthesis.span_replacement import shifted

    records = [{"start": 5, "end": 8, "out_start": 5, "out_end": 12}, {"start": 20, "end": 30, "out_start": 24, "out_end": 26}]
    assert [shifted(p, records, "start") for p in (0, 5, 6, 8, 20, 25, 30, 40)] == [0, 5, 5, 12, 24, 24, 26, 36]
    assert [shifted(p, records, "end") for p in (5, 6, 8, 25, 30)] == [5, 12, 12, 26, 26]


def test_common_places_stay_and_rare_ones_are_replaced(corpus, tmp_path):
    """A town annotated in enough real notes identifies no one: kept (still labelled); a rarer
    one is replaced, and so is a common one that is the town of a replaced hospital's name."""
    nlp, folder = corpus
    docbin = DocBin(store_user_data=True).from_disk(folder / "dev.spacy")
    docbin.add(make_doc(nlp, "n5", 0, "Vive en Leganés; nació en Alcorcón.",
                        [("TERRITORIO", "Leganés"), ("TERRITORIO", "Alcorcón")]))
    docbin.to_disk(folder / "dev.spacy")
    _gold(nlp, tmp_path / "gold.spacy", [("Vive en Leganés y Getafe.", [("TERRITORIO", "Leganés"), ("TERRITORIO", "Getafe")]),
                                         ("Natural de Leganés, trabaja en Getafe.", [("TERRITORIO", "Leganés"), ("TERRITORIO", "Getafe")]),
                                         ("Nacida en Alcorcón.", [("TERRITORIO", "Alcorcón")])])
    report = pseudonymize_corpus(nlp, folder, tmp_path / "out", key=KEY, gold_paths=[tmp_path / "gold.spacy"],
                                 keep_common=2)
    docs = {d.user_data["id"]: d for d in DocBin().from_disk(tmp_path / "out" / "dev.spacy").get_docs(nlp.vocab)}
    towns = [e.text for e in docs["n5#0"].ents]
    assert towns[0] == "Leganés" and towns[1] != "Alcorcón" and len(towns) == 2
    train = {d.user_data["id"]: d for d in DocBin().from_disk(tmp_path / "out" / "train.spacy").get_docs(nlp.vocab)}
    assert "Getafe" not in train["n1#1"].text  # the town of the replaced hospital's name: replaced too
    done = report["pseudonymized"]
    assert done["kept_common"] == 1 and done["common_places"] == 2
