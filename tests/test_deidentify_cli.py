"""The production command: folders, JSONL, stdin, failures, resuming, refusing to overwrite."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.deidentify import PARTIAL_SUFFIX, deidentify_main

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
        [sys.executable, "-m", "clinical_deid.deidentify", str(model), str(inp), str(tmp_path / "out.jsonl"),
         "--mode", "redact", "--batch-size", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stdout = " ".join(result.stdout.split())  # wasabi wraps long lines
    assert "Processed 3 documents" in stdout and "2 failed" in stdout and "words/s" in stdout
    assert "line 2: bad JSON" in result.stderr
    assert "[NOMBRE_SUJETO_ASISTENCIA]" in (tmp_path / "out.jsonl").read_text()
    refused = subprocess.run([sys.executable, "-m", "clinical_deid.deidentify", str(model), str(inp), str(inp)],
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


# --------------------------------------------------------------------------
# Under attack (issue 10): messages, long notes, locks, damaged resumes, clean errors, keys
# --------------------------------------------------------------------------

import errno  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from clinical_deid.deidentify import DeidError, OutputLock, create_key_file, cut_points  # noqa: E402

SECRET_WORD = "Zorbaquixtle"  # a word of a note that no message may carry


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


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n", max_size=300), st.integers(2, 40))
def test_cut_points_cover_the_text_in_bounded_pieces(text, max_chars):
    pieces = cut_points(text, max_chars)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert all(0 < end - start <= max_chars for start, end in pieces) or text == ""


def test_long_notes_go_in_pieces_and_huge_ones_are_reported(model, tmp_path):
    long_note = "\n".join([NOTES["a.txt"], NOTES["sub/b.txt"]] * 6)
    rows = [{"id": "long", "text": long_note}, {"id": "huge", "text": "x " * 600}, {"id": "short", "text": NOTES["c.txt"]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = run(model, tmp_path / "in.jsonl", tmp_path / "whole.jsonl", mode="redact", max_doc_chars=10_000)
    summary = run(model, tmp_path / "in.jsonl", tmp_path / "out.jsonl", mode="redact", max_chars=100,
                  max_doc_chars=1000, spans_output=tmp_path / "spans.jsonl")
    assert whole["failed"] == 0 and summary["documents"] == 2
    assert summary["failures"] == [{"id": "huge", "error": "too large: 1,200 characters, over --max-doc-chars 1,000; not processed"}]
    out = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["text"]
    assert out == json.loads((tmp_path / "whole.jsonl").read_text().splitlines()[0])["text"]
    spans = json.loads((tmp_path / "spans.jsonl").read_text().splitlines()[0])["spans"]
    assert len(spans) == 12 * 3 + 2 * 6  # every piece's entities, the rules' e-mails and phones
    for span in spans:
        assert out[span["out_start"]:span["out_end"]] == span["replacement"]
        assert long_note[span["start"]:span["end"]] in PHI + ["45 años"]
    # Pseudonymized with a key: a name is the same surrogate in every piece.
    run(model, tmp_path / "in.jsonl", tmp_path / "pseudo.jsonl", max_chars=100, max_doc_chars=1000,
        spans_output=tmp_path / "pseudo.spans.jsonl")
    spans = json.loads((tmp_path / "pseudo.spans.jsonl").read_text().splitlines()[0])["spans"]
    assert len({s["replacement"] for s in spans if long_note[s["start"]:s["end"]] == "Ana García"}) == 1


def test_a_second_run_on_the_same_output_stops_at_once(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    with OutputLock([tmp_path / "out.jsonl"]):  # another run holds it
        with pytest.raises(DeidError, match="another run is writing .*out.jsonl"):
            run(model, inp, tmp_path / "out.jsonl")
    write_notes(tmp_path / "in")
    with OutputLock([], folders=[tmp_path / "out"]):
        with pytest.raises(DeidError, match="another run is writing"):
            run(model, tmp_path / "in", tmp_path / "out")
    with OutputLock([tmp_path / "spans.jsonl"]):
        with pytest.raises(DeidError, match="another run is writing .*spans.jsonl"):
            run(model, tmp_path / "in", tmp_path / "out2", spans_output=tmp_path / "spans.jsonl")
    assert run(model, inp, tmp_path / "out.jsonl")["documents"] == 3  # free again


def test_resume_refuses_damaged_or_foreign_jsonl(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    run(model, inp, tmp_path / "full.jsonl", spans_output=tmp_path / "full.spans.jsonl")
    full = (tmp_path / "full.jsonl").read_bytes().splitlines(keepends=True)
    spans = (tmp_path / "full.spans.jsonl").read_bytes().splitlines(keepends=True)
    out, out_spans = tmp_path / "out.jsonl", tmp_path / "out.spans.jsonl"
    damaged = {
        "NUL bytes": (full[:3], spans[:1] + [b"\0" * 40 + spans[1]] + spans[2:3]),
        "its line 2 does not match input line 2": (full[:1] + full[:2], spans[:3]),  # a duplicated line
        "spans line is of another document": (full[:3], spans[1:4]),
    }
    for problem, (out_lines, spans_lines) in damaged.items():
        out.write_bytes(b"".join(out_lines))
        out_spans.write_bytes(b"".join(spans_lines))
        with pytest.raises(DeidError, match=problem):
            run(model, inp, out, spans_output=out_spans)
        assert out.read_bytes() == b"".join(out_lines)  # refused, nothing changed
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "text": "otra nota"}) + "\n")
    with pytest.raises(DeidError, match="does not match input line 1"):
        run(model, other, tmp_path / "full.jsonl")
    first = tmp_path / "first.jsonl"  # the first line of the input only
    first.write_bytes(inp.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(DeidError, match="more lines than the input"):
        run(model, first, tmp_path / "full.jsonl")
    out.write_bytes(b"".join(full[:2]))
    out_spans.write_bytes(b"".join(spans[:2]))
    run(model, inp, out, spans_output=out_spans)  # intact: resumes as before
    assert out.read_bytes() == b"".join(full) and out_spans.read_bytes() == b"".join(spans)


def test_folder_resume_redoes_documents_whose_spans_are_damaged(model, tmp_path):
    write_notes(tmp_path / "in")
    run(model, tmp_path / "in", tmp_path / "fresh", spans_output=tmp_path / "fresh.spans.jsonl")
    run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    lines = (tmp_path / "spans.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "spans.jsonl").write_bytes(lines[0] + b"\0" * 30 + lines[1] + lines[0])  # NULs, duplicate, b.txt lost
    summary = run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    assert summary["skipped"] == 1 and summary["documents"] == 2
    kept = sorted((tmp_path / "spans.jsonl").read_bytes().splitlines(keepends=True))
    assert kept == sorted((tmp_path / "fresh.spans.jsonl").read_bytes().splitlines(keepends=True))


def test_broken_links_and_unreadable_inputs_are_counted(model, tmp_path):
    write_notes(tmp_path / "in")
    (tmp_path / "in/dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "in/loop.txt").symlink_to(tmp_path / "in/loop.txt")
    summary = run(model, tmp_path / "in", tmp_path / "out")
    assert summary["documents"] == 3 and summary["failed"] == 2
    assert [f["id"] for f in summary["failures"]] == ["dangling.txt", "loop.txt"]
    assert all("symbolic link" in f["error"] for f in summary["failures"])


def test_a_failing_write_stops_cleanly_and_keeps_what_was_done(model, tmp_path, monkeypatch):
    write_notes(tmp_path / "in")
    real = pathlib.Path.write_bytes
    calls = []

    def read_only(self, data):
        calls.append(self)
        if len(calls) == 2:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", read_only)
    with pytest.raises(DeidError, match=r"cannot write .*Read-only file system.*the 1 documents before are kept"):
        run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["a.txt"]  # no partial file left
    summary = run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    assert summary["skipped"] == 1 and summary["documents"] == 2
    if os.path.exists("/dev/full"):  # a full disk
        with pytest.raises(DeidError, match="cannot write /dev/full: No space left on device"):
            run(model, jsonl_input(tmp_path / "in.jsonl"), "/dev/full")


def cli(*args, env=None):
    """The command line in this process (test_command_line runs it as a subprocess)."""
    import typer
    from typer.testing import CliRunner

    from clinical_deid.deidentify import main

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, list(map(str, args)), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())


def test_command_line_errors_are_messages_not_tracebacks(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    write_notes(tmp_path / "in")
    cases = [
        ((tmp_path / "no-model", inp, tmp_path / "o.jsonl", "--mode", "redact"), "cannot load the pipeline"),
        ((model, tmp_path / "in", tmp_path / "out", "--spans-output", tmp_path / "out/a.txt", "--mode", "redact"),
         "is inside the output folder"),
        ((model, "-", "-", "--stdin-format", "xml", "--mode", "redact"), "unknown --stdin-format 'xml'"),
        ((model, inp, "/dev/full", "--mode", "redact"), "cannot write /dev/full: No space left on device"),
        ((model, inp, tmp_path / "o.jsonl"), "pseudonymize needs a secret key"),
        ((model, inp, tmp_path / "o.jsonl", "--key-file", tmp_path / "missing.key"), "missing.key"),
    ]
    for args, expected in cases:
        code, output = cli(*args)
        assert code == 1 and expected in output and "Traceback" not in output, (args, output)


def test_keyed_surrogates(model, tmp_path):
    """With a key: one surrogate per real value across notes, per patient date shifts; another key,
    other surrogates; the key itself nowhere."""
    rows = [{"id": "n1", "patient": "p1", "text": "Paciente Ana García ingresa el 12/03/2019."},
            {"id": "n2", "patient": "p1", "text": "Control de Ana García el 12/03/2019 y de Luis Pérez."},
            {"id": "n3", "patient": "p2", "text": "Visita de Luis Pérez en Madrid."}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def surrogates(key, name):
        run(model, tmp_path / "in.jsonl", tmp_path / f"{name}.jsonl", key=key, patient_id_field="patient",
            spans_output=tmp_path / f"{name}.spans.jsonl")
        found = {}
        for doc, line in zip(rows, (tmp_path / f"{name}.spans.jsonl").read_text().splitlines()):
            for span in json.loads(line)["spans"]:
                found.setdefault(doc["text"][span["start"]:span["end"]], set()).add(span["replacement"])
        return found

    one, again, other = surrogates(KEY, "one"), surrogates(KEY, "again"), surrogates(bytes(range(1, 33)), "other")
    assert one == again and all(len(values) == 1 for values in one.values())  # the same in every note
    assert one != other
    key_file = create_key_file(tmp_path / "keys/deid.key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(DeidError, match="never overwritten"):
        create_key_file(key_file)
    secret = key_file.read_text().strip()
    code, output = cli(model, tmp_path / "in.jsonl", tmp_path / "cli.jsonl", "--spans-output",
                       tmp_path / "cli.spans.jsonl", env={"DEID_SURROGATE_KEY": secret})
    assert code == 0 and secret not in output
    assert secret not in (tmp_path / "cli.jsonl").read_text() + (tmp_path / "cli.spans.jsonl").read_text()
    with pytest.raises(DeidError, match="needs a secret key"):
        run(model, tmp_path / "in.jsonl", tmp_path / "nokey.jsonl", key=None)
    assert run(model, tmp_path / "in.jsonl", tmp_path / "demo.jsonl", key=None, insecure_demo_key=True)["documents"] == 3
    code, output = cli(model, "--new-key-file", key_file)
    assert code == 1 and "never overwritten" in output and secret not in output
