"""Machine annotation: chunking, provenance through the DocBin, the per-label report, errors.

Most tests use a blank pipeline with an `entity_ruler` (a real spaCy component, and fast);
one trains a tiny NER pipeline for a few steps and runs the CLI on it from disk.
"""
import json
from pathlib import Path

import pytest
import spacy
import srsly
import typer
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from clinical_deid.io import DataError
from deid_synthesis.annotate import annotate, compare_labels, read_synthetic
from deid_synthesis.corpus.convert import convert, make_nlp
from deid_synthesis.corpus.records import CorpusError
from clinical_deid.tokenizer import count_words
from deid_synthesis.train import timed_train
from scripts.annotate import main

ROOT = Path(__file__).resolve().parent.parent
FILLER = "El paciente refiere dolor abdominal de tres días de evolución sin fiebre ni vómitos."  # 14 words
PROVENANCE = {"prompt": "Paciente de 70", "base_model": "gemma-3-270m", "adapter_hash": "a1b2c3",
              "sampling": {"top_p": 0.95, "temperature": 1.0}, "seed": 7}


def notes():
    long_text = " ".join([FILLER] * 12 + ["Visto por Ana García en el Hospital Clínico."] + [FILLER] * 8)
    return [
        {"id": "n0", "text": "Paciente de 70 años. Nombre: Ana García. Ingresa en el Hospital Clínico.", "sample": 0, **PROVENANCE},
        {"id": "n1", "text": long_text, "sample": 1, **PROVENANCE},
        {"id": "n2", "text": "Ana García y Ana García, sin puntuación alguna " + "y más texto " * 40, "sample": 2, **PROVENANCE},
        {"id": "n3", "text": "   \n ", "sample": 3, **PROVENANCE},
    ]


@pytest.fixture(scope="module")
def ruler_nlp():
    nlp = make_nlp("es")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "NOMBRE_SUJETO_ASISTENCIA", "pattern": "Ana García"},
                        {"label": "HOSPITAL", "pattern": [{"LOWER": "hospital"}, {"IS_TITLE": True}]}])
    return nlp


@pytest.fixture(scope="module")
def synth_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "synthetic.jsonl"
    srsly.write_jsonl(path, notes())
    return path


@pytest.fixture(scope="module")
def gold_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gold")
    text = "Nombre: Ana García. Hospital Clínico de Madrid. Edad: 45 años."
    rows = [{"id": str(i), "text": text, "spans": [{"start": 8, "end": 18, "label": "NOMBRE_SUJETO_ASISTENCIA"},
                                                   {"start": 20, "end": 36, "label": "HOSPITAL"},
                                                   {"start": 40, "end": 46, "label": "TERRITORIO"},
                                                   {"start": 54, "end": 61, "label": "EDAD_SUJETO_ASISTENCIA"}]}
            for i in range(5)]
    srsly.write_jsonl(folder / "gold.jsonl", rows)
    report = convert(folder / "gold.jsonl", folder / "train.spacy", "jsonl", "es")
    assert report["entities"] == 20 and not report["misaligned"]
    return folder / "train.spacy"


def load(path, nlp):
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def test_chunks_respect_max_words_and_keep_every_word(ruler_nlp, synth_path, tmp_path):
    report = annotate(ruler_nlp, synth_path, tmp_path / "out.spacy", max_words=30)
    docs = load(tmp_path / "out.spacy", ruler_nlp)
    assert report["documents"] == 4 and report["empty_documents"] == 1
    assert report["chunks"] == len(docs) > 3
    texts = {note["id"]: note["text"] for note in notes()}
    for doc in docs:
        assert 0 < count_words(doc) <= 30
        start = doc.user_data["char_offset"]
        # The chunk is the note's text from its offset on: nothing moved.
        assert texts[doc.user_data["source_id"]][start:start + len(doc.text)] == doc.text
    for note_id in ("n0", "n1", "n2"):
        chunks = [d for d in docs if d.user_data["source_id"] == note_id]
        assert [d.user_data["chunk"] for d in chunks] == list(range(len(chunks)))
        assert [d.user_data["id"] for d in chunks] == [f"{note_id}#{i}" for i in range(len(chunks))]
        # No word lost or doubled by the cuts.
        assert sum(count_words(d) for d in chunks) == count_words(ruler_nlp.make_doc(texts[note_id]))
    assert report["words"] == sum(count_words(d) for d in docs)
    # Sentence boundaries: the 14-word filler sentences are never cut (30 words hold two).
    long_chunks = [d for d in docs if d.user_data["source_id"] == "n1"]
    assert all(d.text.rstrip().endswith(".") for d in long_chunks)
    # Default: the paper's 128 words.
    assert annotate(ruler_nlp, synth_path, tmp_path / "out128.spacy")["max_words"] == 128


def test_provenance_survives_the_docbin(ruler_nlp, synth_path, tmp_path):
    annotate(ruler_nlp, synth_path, tmp_path / "out.spacy", max_words=30)
    docs = load(tmp_path / "out.spacy", ruler_nlp)
    by_id = {note["id"]: note for note in notes()}
    for doc in docs:
        note = by_id[doc.user_data["source_id"]]
        expected = {k: v for k, v in note.items() if k not in ("id", "text")}
        assert doc.user_data["provenance"] == expected
        assert set(doc.user_data) == {"id", "source_id", "chunk", "char_offset", "provenance"}
    assert not (tmp_path / "out.spacy.tmp").exists()


def test_entities_are_labelled_and_counted(ruler_nlp, synth_path, tmp_path):
    report = annotate(ruler_nlp, synth_path, tmp_path / "out.spacy", max_words=30)
    docs = load(tmp_path / "out.spacy", ruler_nlp)
    names = sum(note["text"].count("Ana García") for note in notes())  # 1 + 1 + 2
    assert names == 4
    assert report["synthetic"]["per_label"] == {"NOMBRE_SUJETO_ASISTENCIA": 4, "HOSPITAL": 2}
    assert sum(len(d.ents) for d in docs) == report["entities"] == 6
    assert report["gold"] is None and report["per_label"]["HOSPITAL"] == {
        "synthetic": 2, "synthetic_per_1k": pytest.approx(2000 / report["words"])}


def test_report_compares_with_gold(ruler_nlp, synth_path, gold_path, tmp_path):
    report = annotate(ruler_nlp, synth_path, tmp_path / "out.spacy", max_words=30, gold_path=gold_path)
    gold = report["gold"]
    # Gold: 5 copies of a note of 10 words (Nombre Ana García Hospital Clínico de Madrid Edad 45 años).
    assert gold["documents"] == 5 and gold["words"] == 50 and gold["entities"] == 20
    rows = report["per_label"]
    # Gold counts tie (5 each): then by synthetic count (4, 2, 0, 0), then by name.
    assert list(rows) == ["NOMBRE_SUJETO_ASISTENCIA", "HOSPITAL", "EDAD_SUJETO_ASISTENCIA", "TERRITORIO"]
    w = report["words"]
    assert rows["NOMBRE_SUJETO_ASISTENCIA"]["gold"] == 5
    assert rows["NOMBRE_SUJETO_ASISTENCIA"]["gold_per_1k"] == pytest.approx(100.0)  # 5 per 50 words
    assert rows["NOMBRE_SUJETO_ASISTENCIA"]["ratio"] == pytest.approx((4000 / w) / 100.0)
    assert rows["TERRITORIO"]["synthetic"] == 0 and rows["TERRITORIO"]["ratio"] == 0.0


def test_dev_hold_out_keeps_notes_whole(ruler_nlp, tmp_path):
    path = tmp_path / "many.jsonl"
    srsly.write_jsonl(path, [{"id": f"m{i}", "text": " ".join([FILLER] * (1 + i % 3))} for i in range(20)])
    report = annotate(ruler_nlp, path, tmp_path / "train.spacy", max_words=20, dev_output=tmp_path / "dev.spacy",
                      dev_share=0.25, seed=1)
    train, dev = load(tmp_path / "train.spacy", ruler_nlp), load(tmp_path / "dev.spacy", ruler_nlp)
    train_notes = {d.user_data["source_id"] for d in train}
    dev_notes = {d.user_data["source_id"] for d in dev}
    assert len(dev_notes) == report["dev_documents"] == 5 and len(train_notes) == 15  # 25 % of 20
    assert not train_notes & dev_notes
    assert len(train) + len(dev) == report["chunks"] and len(dev) == report["dev_chunks"]
    again = annotate(ruler_nlp, path, tmp_path / "train2.spacy", max_words=20, dev_output=tmp_path / "dev2.spacy",
                     dev_share=0.25, seed=1)
    assert {d.user_data["source_id"] for d in load(tmp_path / "dev2.spacy", ruler_nlp)} == dev_notes
    assert again["dev_chunks"] == report["dev_chunks"]
    other = annotate(ruler_nlp, path, tmp_path / "train3.spacy", dev_output=tmp_path / "dev3.spacy", dev_share=0.25, seed=2)
    assert {d.user_data["source_id"] for d in load(tmp_path / "dev3.spacy", ruler_nlp)} != dev_notes
    assert other["dev_documents"] == 5
    with pytest.raises(CorpusError, match="dev-share"):
        annotate(ruler_nlp, path, tmp_path / "x.spacy", dev_output=tmp_path / "d.spacy", dev_share=1.0)


def test_compare_labels_by_hand():
    synthetic = {"words": 2000, "per_label": {"A": 10}}
    gold = {"words": 1000, "per_label": {"A": 10, "B": 4}}
    rows = compare_labels(synthetic, gold, labels=["C"])
    assert list(rows) == ["A", "B", "C"]  # by gold count, then synthetic count
    assert rows["A"] == {"synthetic": 10, "synthetic_per_1k": 5.0, "gold": 10, "gold_per_1k": 10.0, "ratio": 0.5}
    assert rows["B"]["ratio"] == 0.0 and rows["B"]["gold_per_1k"] == 4.0
    assert rows["C"] == {"synthetic": 0, "synthetic_per_1k": 0.0, "gold": 0, "gold_per_1k": 0.0, "ratio": None}


def test_several_processes_give_the_same_corpus(ruler_nlp, synth_path, tmp_path):
    annotate(ruler_nlp, synth_path, tmp_path / "one.spacy", max_words=30, batch_size=2)
    annotate(ruler_nlp, synth_path, tmp_path / "two.spacy", max_words=30, batch_size=2, n_process=2)
    one, two = load(tmp_path / "one.spacy", ruler_nlp), load(tmp_path / "two.spacy", ruler_nlp)
    assert [d.user_data for d in one] == [d.user_data for d in two]
    assert [[(e.start_char, e.label_) for e in d.ents] for d in one] == [[(e.start_char, e.label_) for e in d.ents] for d in two]


def test_pipeline_extension_data_is_not_stored(synth_path, tmp_path):
    if not Doc.has_extension("annotate_test_blob"):
        Doc.set_extension("annotate_test_blob", default=None)

    @Language.component("annotate_test_blob_writer")
    def writer(doc):
        doc._.annotate_test_blob = "x" * 1000  # stands for a transformer's output
        return doc

    nlp = make_nlp("es")
    nlp.add_pipe("annotate_test_blob_writer")
    annotate(nlp, synth_path, tmp_path / "out.spacy")
    for doc in load(tmp_path / "out.spacy", nlp):
        assert all(isinstance(key, str) for key in doc.user_data)


@pytest.mark.parametrize("lines, where, what", [
    (['{"id": "a", "text": "bien"}', '{"id": "b", "text": '], "broken.jsonl:2", "invalid JSON"),
    (['{"id": "a", "text": "bien"}', "", '{"id": "c", "txt": "x"}'], "broken.jsonl:3", "'text'"),
    (['["text"]'], "broken.jsonl:1", "not a JSON object"),
])
def test_bad_jsonl_names_file_and_line(ruler_nlp, tmp_path, lines, where, what):
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    with pytest.raises(DataError, match=what) as err:
        annotate(ruler_nlp, path, tmp_path / "out.spacy")
    assert where in str(err.value)
    assert not (tmp_path / "out.spacy").exists() and not list(tmp_path.glob(".out.spacy*"))


def test_missing_files_and_default_ids(ruler_nlp, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        annotate(ruler_nlp, tmp_path / "nope.jsonl", tmp_path / "out.spacy")
    path = tmp_path / "noid.jsonl"
    srsly.write_jsonl(path, [{"text": "Hola."}, {"text": "Adiós.", "id": 7}])
    assert [r["id"] for _, r in read_synthetic(path)] == ["noid-1", "7"]
    with pytest.raises(DataError, match="nope.spacy: no such DocBin"):
        annotate(ruler_nlp, path, tmp_path / "out.spacy", gold_path=tmp_path / "nope.spacy")


def cli():
    app = typer.Typer()
    app.command()(main)
    return app


def test_cli_with_a_trained_pipeline(synth_path, gold_path, tmp_path):
    """A real NER pipeline trained for 4 steps, loaded from disk with --code, as in project.yml."""
    model = tmp_path / "model"
    timed_train(ROOT / "configs/ner_cpu.cfg", model, {"paths.train": str(gold_path), "paths.dev": str(gold_path),
                                                      "training.max_steps": 4, "training.eval_frequency": 2})
    out, report_path = tmp_path / "synthetic.spacy", tmp_path / "annotate.json"
    result = CliRunner().invoke(cli(), [str(model / "model-best"), str(synth_path), str(out), "--gold", str(gold_path),
                                        "--report", str(report_path), "--max-words", "40", "--batch-size", "8",
                                        "--dev-output", str(tmp_path / "dev.spacy"), "--dev-share", "0.3",
                                        "--code", str(ROOT / "src/clinical_deid/tokenizer.py")])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    nlp = spacy.load(model / "model-best")
    docs = load(out, nlp)
    dev = load(tmp_path / "dev.spacy", nlp)
    assert report["dev_documents"] == 1  # 30 % of the 3 non-blank notes
    assert len(docs) + len(dev) == report["chunks"] and all(count_words(d) <= 40 for d in docs + dev)
    # Every label the annotator knows is in the table, predicted or not.
    assert set(nlp.get_pipe("ner").labels) <= set(report["per_label"])
    assert report["annotator"]["pipeline"] == ["tok2vec", "ner"]
    # No note text in what is printed.
    assert "paciente refiere" not in result.output and "Ana García" not in result.output


def test_cli_fails_on_malformed_file(tmp_path, ruler_nlp):
    ruler_nlp.to_disk(tmp_path / "ruler")
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "a", "text": "Hola."}\n{oops\n', encoding="utf8")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(cli(), [str(tmp_path / "ruler"), str(path), str(out)])
    assert result.exit_code == 1
    assert "broken.jsonl:2" in result.output
    assert not out.exists()


def test_an_ensemble_annotates_with_its_members_labels(synth_path, tmp_path):
    from deid_synthesis.ensemble import build_ensemble

    name = {"label": "NOMBRE_SUJETO_ASISTENCIA", "pattern": "Ana García"}
    hospital = {"label": "HOSPITAL", "pattern": [{"LOWER": "hospital"}, {"IS_TITLE": True}]}
    unseen = {"label": "PAIS", "pattern": "Islandia"}
    paths = []
    for i, patterns in enumerate([[name, hospital], [name, hospital, unseen], [name]]):
        member = make_nlp("es")
        member.add_pipe("entity_ruler", name="ner").add_patterns(patterns)
        member.to_disk(tmp_path / f"m{i}")
        paths.append(str(tmp_path / f"m{i}"))
    report = annotate(build_ensemble(paths), synth_path, tmp_path / "out.spacy", max_words=30)
    assert report["synthetic"]["per_label"] == {"NOMBRE_SUJETO_ASISTENCIA": 4, "HOSPITAL": 2}
    assert report["per_label"]["PAIS"]["synthetic"] == 0  # known to a member, never predicted
    assert report["annotator"]["pipeline"] == ["deid_ensemble_ner"]
