"""The production command's inputs: folders, JSONL, failing documents, refusing to overwrite."""
import json

import pytest
import spacy

from deidentify_support import NOTES, PHI, SECRET_WORD, KEY, jsonl_input, model, run, write_notes  # noqa: F401
from clinical_deid.deidentify import deidentify_main


def test_folder_with_an_unreadable_file(model, tmp_path):
    write_notes(tmp_path / "in")
    (tmp_path / "in/latin1.txt").write_bytes("Nombre: José Pérez".encode("latin-1"))
    summary = run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    assert summary["documents"] == 3 and summary["failed"] == 1
    assert summary["failures"][0]["id"] == "latin1.txt" and "decode" in summary["failures"][0]["error"]
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                  if p.is_file()) == ["a.txt", "c.txt", "sub/b.txt"]
    assert (tmp_path / "out/c.txt").read_text() == NOTES["c.txt"]
    outputs = " ".join(p.read_text() for p in (tmp_path / "out").rglob("*.txt"))
    assert not [phi for phi in PHI if phi in outputs]
    assert summary["entities"]["NUMERO_TELEFONO"] == 1 and summary["entities"]["CORREO_ELECTRONICO"] == 1
    assert summary["tokens"] > 30 and summary["tokens_per_second"] > 0
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert [s["id"] for s in spans] == ["a.txt", "c.txt", "sub/b.txt"]
    out_a = (tmp_path / "out/a.txt").read_text()
    for span in spans[0]["spans"]:
        assert NOTES["a.txt"][span["start"] : span["end"]] in PHI + ["45 años"]
        assert out_a[span["out_start"] : span["out_end"]] == span["replacement"]


def test_jsonl_failures_keep_one_line_per_input(model, tmp_path):
    summary = run(model, jsonl_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                  spans_output=tmp_path / "spans.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and summary["documents"] == 3 and summary["failed"] == 2
    assert [f["id"] for f in summary["failures"]] == ["line 2", "empty"]
    assert "bad JSON" in rows[1]["_deid_error"] and rows[3] == {"_deid_error": "no text field 'text'", "id": "empty"}
    assert rows[0]["id"] == "n0" and rows[0]["site"] == "H1" and "Ana García" not in rows[0]["text"]
    assert len((tmp_path / "spans.jsonl").read_text().splitlines()) == 5


def test_two_processes_give_the_same_output(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    run(model, inp, tmp_path / "one.jsonl", batch_size=2)
    run(model, inp, tmp_path / "two.jsonl", batch_size=1, n_process=2)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_refuses_to_write_over_its_input(model, tmp_path):
    write_notes(tmp_path / "in")
    inp = jsonl_input(tmp_path / "in.jsonl")
    with pytest.raises(ValueError, match="is the input"):
        run(model, inp, inp)
    with pytest.raises(ValueError, match="inside the input folder"):
        run(model, tmp_path / "in", tmp_path / "in/deid")
    with pytest.raises(ValueError, match="is the input"):
        run(model, inp, tmp_path / "out.jsonl", spans_output=inp)
    with pytest.raises(ValueError, match="contains the input folder"):
        run(model, tmp_path / "in", tmp_path)
    assert (tmp_path / "in/a.txt").read_text() == NOTES["a.txt"]


def test_a_component_error_drops_only_that_document(model, tmp_path):
    nlp = spacy.load(model)
    nlp.add_pipe("test_fails_on_boom", first=True)
    write_notes(tmp_path / "in", {**NOTES, "boom.txt": "Ana García BOOM"})
    summary = run(nlp, tmp_path / "in", tmp_path / "out")
    assert summary["documents"] == 3 and summary["failures"] == [
        {"id": "boom.txt", "error": "test_fails_on_boom failed: RuntimeError"}]
    assert not (tmp_path / "out/boom.txt").exists()


def test_a_failing_batch_goes_on_one_document_at_a_time(model, tmp_path):
    nlp = spacy.blank("es")
    nlp.add_pipe("ner").add_label("NOMBRE_SUJETO_ASISTENCIA")  # takes no error handler either
    nlp.initialize()
    nlp.add_pipe("test_batch_fails_on_boom")
    write_notes(tmp_path / "in", {"a.txt": "Ana", "b.txt": "BOOM", "c.txt": "Luis", "d.txt": "Eva"})
    summary = run(nlp, tmp_path / "in", tmp_path / "out", batch_size=2)
    assert summary["documents"] == 3 and summary["failures"] == [
        {"id": "b.txt", "error": "pipeline failed: RuntimeError"}]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "c.txt", "d.txt"]


def test_messages_carry_no_input_text(model, tmp_path, capsys):
    """A lone surrogate (a JSON escape) and a failing component: types and offsets, not the text."""
    nlp = spacy.load(model)
    nlp.add_pipe("test_fails_on_boom", first=True)
    rows = [{"id": "s1", "text": f"{SECRET_WORD} \ud800 Ana García"}, {"id": "b1", "text": f"{SECRET_WORD} BOOM"},
            {"id": "ok", "text": NOTES["a.txt"]}, {"id": "\udc80x", "other": "\udfff", "text": "Sin datos."}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"id": "j", "text": "'
                                       + SECRET_WORD + '"\n', encoding="utf8")
    summary = deidentify_main(nlp, tmp_path / "in.jsonl", tmp_path / "out.jsonl", key=KEY,
                              spans_output=tmp_path / "spans.jsonl")
    captured = capsys.readouterr()
    assert SECRET_WORD not in captured.out + captured.err + json.dumps(summary)
    failures = {f["id"]: f["error"] for f in summary["failures"]}
    assert failures["s1"] == "lone surrogate (an unpaired \\u escape) at character 13 of 'text'"
    assert failures["b1"] == "test_fails_on_boom failed: RuntimeError"
    assert failures["line 5"] == "bad JSON: Expecting ',' delimiter at character 35"
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf8").splitlines()]
    assert len(out) == 5 and out[3]["other"] == "\udfff" and out[3]["text"] == "Sin datos."  # kept, escaped
    assert SECRET_WORD not in (tmp_path / "out.jsonl").read_text() + (tmp_path / "spans.jsonl").read_text()


def test_broken_links_and_unreadable_inputs_are_counted(model, tmp_path):
    write_notes(tmp_path / "in")
    (tmp_path / "in/dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "in/loop.txt").symlink_to(tmp_path / "in/loop.txt")
    summary = run(model, tmp_path / "in", tmp_path / "out")
    assert summary["documents"] == 3 and summary["failed"] == 2
    assert [f["id"] for f in summary["failures"]] == ["dangling.txt", "loop.txt"]
    assert all("symbolic link" in f["error"] for f in summary["failures"])
