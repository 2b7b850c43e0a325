"""The Ray engine (`--engine ray`). The production command: the same outputs as the local command,
byte for byte, and a job killed halfway that, run again, ends with every document exactly once.
Machine annotation: the same corpus (chunks, order, entities, provenance) as in one process.

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
import srsly
from spacy.tokens import DocBin

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


def test_ray_annotation_gives_the_corpus_of_one_process(model, tmp_path):
    import spacy

    from deid_synthesis.annotate import annotate

    rows = [{"id": f"s{i}", "text": f"Nota {i}. {NOTE}", "prompt_id": f"p{i}", "seed": i} for i in range(30)]
    rows.insert(3, {"id": "empty", "text": "   "})
    srsly.write_jsonl(tmp_path / "synthetic.jsonl", rows)
    nlp = spacy.load(model)
    outputs = {}
    for engine in ("local", "ray"):
        out, dev = tmp_path / f"{engine}.spacy", tmp_path / f"{engine}-dev.spacy"
        report = annotate(nlp, tmp_path / "synthetic.jsonl", out, max_words=40, dev_output=dev, dev_share=0.2,
                          engine=engine, model=str(model), n_process=2 if engine == "ray" else 1)
        docs = [d for path in (out, dev) for d in DocBin().from_disk(path).get_docs(nlp.vocab)]
        outputs[engine] = ([(d.text, d.user_data, [(e.start_char, e.end_char, e.label_) for e in d.ents]) for d in docs],
                           {k: report[k] for k in ("documents", "empty_documents", "chunks", "tokens", "entities")})
    assert outputs["ray"] == outputs["local"]
    assert outputs["ray"][1]["documents"] == 31 and outputs["ray"][1]["entities"] > 0


def test_ray_generation_writes_the_corpus_of_one_process(tmp_path):
    """`generate` with `ray_actors = 2` (the project's sampler in each actor, a tiny random model):
    the same samples.jsonl as one process. Batch size 1 in the sampler: the same arithmetic."""
    from test_generate import CONFIG, build_corpus, overrides

    from deid_synthesis.generation.generate import SAMPLES, generate

    folder = build_corpus(tmp_path)
    outputs = {}
    for actors in (0, 2):
        settings = overrides(folder, **{"components.llm.model.batch_size": 1, "components.llm.model.ray_actors": actors})
        report = generate(CONFIG, folder / "dev.spacy", folder / "train.spacy", tmp_path / f"out-{actors}", n_samples=2,
                          overrides=settings, silent=True)
        outputs[actors] = (tmp_path / f"out-{actors}" / SAMPLES).read_bytes()
        assert report["kept"] + sum(report["dropped"].values()) == 12
    assert outputs[2] == outputs[0]


def test_parquet_input_gives_the_output_of_the_same_records_as_jsonl(model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{"id": f"n{i}", "text": f"Nota {i}. {NOTE}", "site": "H1", "year": 2019 + i % 3} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "in.parquet", row_group_size=5)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf8")
    run(model, tmp_path / "in.jsonl", tmp_path / "from-jsonl.jsonl")
    expected = (tmp_path / "from-jsonl.jsonl").read_bytes()
    run(model, tmp_path / "in.parquet", tmp_path / "local.jsonl")
    run(model, tmp_path / "in.parquet", tmp_path / "ray.jsonl", engine="ray", n_process=2, block_size=3)
    assert (tmp_path / "local.jsonl").read_bytes() == (tmp_path / "ray.jsonl").read_bytes() == expected
    # Resumed after 5 rows and half of the sixth: the same file.
    lines = expected.splitlines(keepends=True)
    (tmp_path / "resumed.jsonl").write_bytes(b"".join(lines[:5]) + lines[5][:30])
    summary = run(model, tmp_path / "in.parquet", tmp_path / "resumed.jsonl", engine="ray", n_process=2)
    assert summary["skipped"] == 5 and (tmp_path / "resumed.jsonl").read_bytes() == expected
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DeidError, match="bad.parquet as Parquet"):
        run(model, tmp_path / "bad.parquet", tmp_path / "bad.jsonl")


def test_a_worker_runs_one_process_with_its_share_of_the_threads():
    """nlp.pipe inside a worker must not start processes of its own (the 2-process run was 1.07x)."""
    from clinical_deid.production.options import RunOptions
    from clinical_deid.production.workers import default_threads, worker_options

    options = worker_options(RunOptions("in.jsonl", "out.jsonl", n_process=2, stdin=object(), stdout=object()))
    assert options.n_process == 1 and options.stdin is None and options.stdout is None
    assert options.threads == default_threads(2) >= 1
    assert worker_options(RunOptions("in.jsonl", "out.jsonl", n_process=2, threads=3)).threads == 3
