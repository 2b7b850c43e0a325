"""The production command's command line, standard streams, modes and secret keys."""
import dataclasses
import inspect
import io
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from deidentify_support import KEY, NOTES, ROOT, cli, jsonl_input, model, run, write_notes  # noqa: F401
from clinical_deid.production.cli import main
from clinical_deid.production.errors import DeidError
from clinical_deid.production.keys import create_key_file
from clinical_deid.production.options import RunOptions


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
    assert "Processed 3 documents" in stdout and "2 failed" in stdout and "tokens/s" in stdout
    assert "line 2: bad JSON" in result.stderr
    assert "[NOMBRE_SUJETO_ASISTENCIA]" in (tmp_path / "out.jsonl").read_text()
    refused = subprocess.run([sys.executable, "-m", "clinical_deid.deidentify", str(model), str(inp), str(inp)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "is the input" in " ".join(refused.stderr.split())


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


def test_every_run_option_is_a_command_line_option():
    """The CLI builds RunOptions: each option of a run (but the key, streams and in-process
    settings) has its command-line option of the same name."""
    in_process = {"key", "stdin", "stdout", "encoding", "silent"}
    fields = {f.name for f in dataclasses.fields(RunOptions)} - in_process
    assert fields <= set(inspect.signature(main).parameters)


def test_the_command_runs_under_each_of_its_names():
    """`python -m clinical_deid`, the project step and the console script are one command."""
    script = shutil.which("clinical-deid") or str(pathlib.Path(sys.executable).parent / "clinical-deid")
    for command in ([sys.executable, "-m", "clinical_deid"], [sys.executable, "-m", "scripts.deidentify"], [script]):
        result = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "--max-doc-chars" in result.stdout, (command, result.stderr[-2000:])
