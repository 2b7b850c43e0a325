"""The production command: folders, JSONL, stdin, failures, resuming, refusing to overwrite."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

import scripts.functions  # noqa: F401  (registers the clinical tokenizer)
from scripts.deidentify import PARTIAL_SUFFIX, deidentify_main

ROOT = Path(__file__).resolve().parent.parent
NOTES = {
    "a.txt": "Paciente Ana García, 45 años, ingresa el 12/03/2019. Tel 612 345 678.",
    "sub/b.txt": "Control de Luis Pérez el 14/03/2019 en Madrid. Correo luis.perez@correo.es.",
    "c.txt": "Sin datos personales.",
}
PATTERNS = [("NOMBRE_SUJETO_ASISTENCIA", "Ana García"), ("NOMBRE_SUJETO_ASISTENCIA", "Luis Pérez"),
            ("EDAD_SUJETO_ASISTENCIA", "45 años"), ("FECHAS", "12/03/2019"), ("FECHAS", "14/03/2019"),
            ("TERRITORIO", "Madrid")]
PHI = ["Ana García", "Luis Pérez", "12/03/2019", "14/03/2019", "Madrid", "612 345 678", "luis.perez@correo.es"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained pipeline's stand-in: tokenizer + entity_ruler, no deid components yet."""
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": l, "pattern": p} for l, p in PATTERNS])
    path = tmp_path_factory.mktemp("model") / "model"
    nlp.to_disk(path)
    return path


def write_notes(folder, notes=NOTES):
    for rel, text in notes.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf8")


KEY = bytes(range(32))  # a test key: pseudonymizing needs one


def run(model, inp, out, **kwargs):
    kwargs.setdefault("key", KEY)
    return deidentify_main(model, inp, out, silent=True, **kwargs)


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
    assert summary["words"] > 30 and summary["words_per_second"] > 0
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert [s["id"] for s in spans] == ["a.txt", "c.txt", "sub/b.txt"]
    out_a = (tmp_path / "out/a.txt").read_text()
    for span in spans[0]["spans"]:
        assert NOTES["a.txt"][span["start"] : span["end"]] in PHI + ["45 años"]
        assert out_a[span["out_start"] : span["out_end"]] == span["replacement"]


def test_folder_resumes_after_an_interruption(model, tmp_path):
    write_notes(tmp_path / "in")
    fresh = run(model, tmp_path / "in", tmp_path / "fresh")
    # Interrupted run: a.txt finished, sub/b.txt was being written when it stopped.
    (tmp_path / "out/sub").mkdir(parents=True)
    (tmp_path / "out/a.txt").write_text("FINISHED EARLIER")
    (tmp_path / f"out/sub/.b.txt{PARTIAL_SUFFIX}").write_text("Control de Lu")
    summary = run(model, tmp_path / "in", tmp_path / "out")
    assert summary["skipped"] == 1 and summary["documents"] == 2 and fresh["documents"] == 3
    assert (tmp_path / "out/a.txt").read_text() == "FINISHED EARLIER"
    assert (tmp_path / "out/sub/b.txt").read_text() == (tmp_path / "fresh/sub/b.txt").read_text()
    assert not list((tmp_path / "out").rglob(f"*{PARTIAL_SUFFIX}"))
    # --no-resume does everything again.
    assert run(model, tmp_path / "in", tmp_path / "out", resume=False)["documents"] == 3


def jsonl_input(path):
    rows = [json.dumps({"id": f"n{i}", "text": text, "site": "H1"}, ensure_ascii=False) for i, text in enumerate(NOTES.values())]
    rows.insert(1, '{"id": "broken", "text": ')  # bad JSON
    rows.insert(3, '{"id": "empty"}')  # no text field
    path.write_text("\n".join(rows) + "\n\n", encoding="utf8")
    return path


def test_jsonl_failures_keep_one_line_per_input(model, tmp_path):
    summary = run(model, jsonl_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                  spans_output=tmp_path / "spans.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and summary["documents"] == 3 and summary["failed"] == 2
    assert [f["id"] for f in summary["failures"]] == ["line 2", "empty"]
    assert "bad JSON" in rows[1]["_deid_error"] and rows[3] == {"_deid_error": "no text field 'text'", "id": "empty"}
    assert rows[0]["id"] == "n0" and rows[0]["site"] == "H1" and "Ana García" not in rows[0]["text"]
    assert len((tmp_path / "spans.jsonl").read_text().splitlines()) == 5


def test_jsonl_resume_gives_the_same_output_as_one_run(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    run(model, inp, tmp_path / "full.jsonl", spans_output=tmp_path / "full.spans.jsonl")
    full = (tmp_path / "full.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    # Interrupted after two complete lines and half of the third.
    (tmp_path / "out.jsonl").write_bytes(lines[0] + lines[1] + lines[2][:20])
    (tmp_path / "out.spans.jsonl").write_bytes(b"".join((tmp_path / "full.spans.jsonl").read_bytes().splitlines(keepends=True)[:3]))
    summary = run(model, inp, tmp_path / "out.jsonl", spans_output=tmp_path / "out.spans.jsonl")
    assert summary["skipped"] == 2
    assert (tmp_path / "out.jsonl").read_bytes() == full
    assert (tmp_path / "out.spans.jsonl").read_bytes() == (tmp_path / "full.spans.jsonl").read_bytes()


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


def test_modes_and_stdin(model, tmp_path):
    out = io.BytesIO()
    stdin = io.BytesIO(NOTES["a.txt"].encode())
    summary = run(model, "-", "-", stdin_format="text", mode="redact", stdin=stdin, stdout=out)
    assert out.getvalue().decode() == ("Paciente [NOMBRE_SUJETO_ASISTENCIA], [EDAD_SUJETO_ASISTENCIA], "
                                       "ingresa el [FECHAS]. Tel [NUMERO_TELEFONO].")
    assert summary["documents"] == 1
    out = io.BytesIO()
    run(model, "-", "-", mode="mask", stdin=io.BytesIO(b'{"text": "Ana Garc\\u00eda"}\n'), stdout=out)
    assert json.loads(out.getvalue()) == {"text": "*** ******"}


def test_command_line(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.deidentify", str(model), str(inp), str(tmp_path / "out.jsonl"),
         "--mode", "redact", "--batch-size", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stdout = " ".join(result.stdout.split())  # wasabi wraps long lines
    assert "Processed 3 documents" in stdout and "2 failed" in stdout and "words/s" in stdout
    assert "line 2: bad JSON" in result.stderr
    assert "[NOMBRE_SUJETO_ASISTENCIA]" in (tmp_path / "out.jsonl").read_text()
    refused = subprocess.run([sys.executable, "-m", "scripts.deidentify", str(model), str(inp), str(inp)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "is the input" in " ".join(refused.stderr.split())


@spacy.Language.component("test_fails_on_boom")
def fails_on_boom(doc):
    if "BOOM" in doc.text:
        raise RuntimeError("cannot handle BOOM")
    return doc


def test_a_component_error_drops_only_that_document(model, tmp_path):
    nlp = spacy.load(model)
    nlp.add_pipe("test_fails_on_boom", first=True)
    write_notes(tmp_path / "in", {**NOTES, "boom.txt": "Ana García BOOM"})
    summary = run(nlp, tmp_path / "in", tmp_path / "out")
    assert summary["documents"] == 3 and summary["failures"] == [
        {"id": "boom.txt", "error": "test_fails_on_boom failed: RuntimeError"}]
    assert not (tmp_path / "out/boom.txt").exists()


class BatchFailsOnBoom:
    """Like spaCy's ner: a pipe() over batches and no error handler to set."""

    def __call__(self, doc):
        if "BOOM" in doc.text:
            raise RuntimeError("cannot handle BOOM")
        return doc

    def pipe(self, docs, batch_size=128):
        for batch in spacy.util.minibatch(docs, batch_size):
            for doc in batch:
                self(doc)
            yield from batch


@spacy.Language.factory("test_batch_fails_on_boom")
def make_batch_fails_on_boom(nlp, name):
    return BatchFailsOnBoom()


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
