"""The production command on Ray (`--engine ray`): the same outputs as the local command, byte for
byte, and a job killed halfway that, run again, ends with every document exactly once.

A local Ray instance (2 CPUs) for the module; the kill test starts the command as a process of
its own (which starts its own instance) and kills its whole process group.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from deidentify_support import KEY, jsonl_input, model, run, write_notes  # noqa: F401
from clinical_deid.production.errors import DeidError

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'clinical-deid[ray]'); setup.sh installs it")

NOTE = ("Paciente Ana García, 45 años, ingresa el 12/03/2019 en Madrid. Tel 612 345 678. "
        "Control de Luis Pérez el 14/03/2019. ") * 12  # ~1.4 kB: the output file fills its buffer


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def many_notes(path, n):
    rows = [json.dumps({"id": f"n{i}", "text": f"Nota {i}. {NOTE}", "patient": f"p{i % 7}"}, ensure_ascii=False)
            for i in range(n)]
    rows.insert(5, '{"id": "broken", "text": ')  # a bad line is a failed document, as locally
    path.write_text("\n".join(rows) + "\n", encoding="utf8")
    return path


def test_ray_jsonl_output_equals_the_local_output(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    local = run(model, inp, tmp_path / "local.jsonl", spans_output=tmp_path / "local.spans.jsonl")
    remote = run(model, inp, tmp_path / "ray.jsonl", spans_output=tmp_path / "ray.spans.jsonl", engine="ray",
                 n_process=2, block_size=1)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert (tmp_path / "ray.spans.jsonl").read_bytes() == (tmp_path / "local.spans.jsonl").read_bytes()
    assert remote["failed"] == local["failed"] == 2 and remote["documents"] == local["documents"] == 3
    assert [f["id"] for f in remote["failures"]] == [f["id"] for f in local["failures"]]


def test_ray_folder_output_equals_the_local_output(model, tmp_path):
    write_notes(tmp_path / "in")
    run(model, tmp_path / "in", tmp_path / "local", mode="pseudonymize")
    summary = run(model, tmp_path / "in", tmp_path / "ray", mode="pseudonymize", engine="ray", n_process=2,
                  block_size=2)
    local = {p.relative_to(tmp_path / "local"): p.read_bytes() for p in (tmp_path / "local").rglob("*.txt")}
    remote = {p.relative_to(tmp_path / "ray"): p.read_bytes() for p in (tmp_path / "ray").rglob("*.txt")}
    assert remote == local and summary["documents"] == 3


def test_ray_needs_a_pipeline_it_can_load_by_name(tmp_path):
    import spacy

    with pytest.raises(DeidError, match="package name or folder"):
        run(spacy.blank("es"), jsonl_input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl", engine="ray", n_process=2)


def line_count(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_ray_job_killed_halfway_resumes_with_every_document_once(model, tmp_path):
    inp = many_notes(tmp_path / "in.jsonl", 60)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY.hex().encode())
    run(model, inp, tmp_path / "full.jsonl", spans_output=tmp_path / "full.spans.jsonl", patient_id_field="patient")
    out, spans = tmp_path / "out.jsonl", tmp_path / "out.spans.jsonl"
    # The job reads its input from a pipe: half of it is given, then the job is killed (SIGKILL,
    # its Ray instance with it) once it has written what it could.
    command = [sys.executable, "-m", "clinical_deid.deidentify", str(model), "-", str(out), "--spans-output", str(spans),
               "--engine", "ray", "--n-process", "2", "--block-size", "4", "--key-file", str(key_file),
               "--patient-id-field", "patient"]
    job = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    lines = inp.read_bytes().splitlines(keepends=True)
    job.stdin.write(b"".join(lines[:31]))
    job.stdin.flush()
    deadline = time.monotonic() + 120
    while line_count(spans) < 16 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    written = line_count(spans)
    assert 16 <= written < 61, "the job did not stop halfway"
    summary = run(model, inp, out, spans_output=spans, patient_id_field="patient", engine="ray", n_process=2,
                  block_size=4)
    assert summary["skipped"] > 0 and summary["skipped"] + summary["documents"] + summary["failed"] == 61
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    assert spans.read_bytes() == (tmp_path / "full.spans.jsonl").read_bytes()
    ids = [json.loads(line).get("id", json.loads(line).get("_deid_id")) for line in out.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == 61
