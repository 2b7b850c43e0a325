"""The product as users get it: a wheel built by scripts/package_pipeline.py, installed with pip
into a fresh virtual environment, loaded with `spacy.load` and run with `python -m <package>`."""
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import srsly

from scripts.convert import convert
from scripts.package_pipeline import package_pipeline
from scripts.train import timed_train

ROOT = Path(__file__).resolve().parent.parent
NAME = "es_deid_synth"
# Each note has an e-mail and a date, which the rules find even when a 4-step NER finds nothing.
NOTES = [
    ("Nombre: Ana García López. Edad: 45 años. Correo: ana.garcia@example.com. Alta el 12/03/2019.",
     [(8, 24, "NOMBRE_SUJETO_ASISTENCIA"), (32, 39, "EDAD_SUJETO_ASISTENCIA"), (49, 71, "CORREO_ELECTRONICO"), (81, 91, "FECHAS")]),
    ("Paciente remitido al Hospital Clínico de Madrid el 02/05/2020. Contacto: luis.perez@example.org.",
     [(21, 47, "HOSPITAL"), (51, 61, "FECHAS"), (73, 95, "CORREO_ELECTRONICO")]),
]
SCORES = {"ents_strict": {"p": 0.9, "r": 0.8, "f": 0.847}, "token": {"f": 0.9}, "spans_merged": {"f": 0.88},
          "leak": {"leak_score": 0.02, "missed": 3}}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A 4-step pipeline trained on six notes, packaged as a wheel (about 10 s)."""
    folder = tmp_path_factory.mktemp("package")
    rows = [{"id": str(i), "text": NOTES[i % 2][0], "spans": [{"start": s, "end": e, "label": l} for s, e, l in NOTES[i % 2][1]]}
            for i in range(6)]
    srsly.write_jsonl(folder / "notes.jsonl", rows)
    report = convert(folder / "notes.jsonl", folder / "train.spacy", "jsonl", "es")
    assert not report["misaligned"]
    srsly.write_json(folder / "report.json", {"train": report})
    overrides = {"paths.train": str(folder / "train.spacy"), "paths.dev": str(folder / "train.spacy"),
                 "training.max_steps": 4, "training.eval_frequency": 2}
    timed_train(ROOT / "configs/ner_cpu.cfg", folder / "model", overrides)
    srsly.write_json(folder / "synthetic.json", SCORES)
    srsly.write_json(folder / "gold.json", {**SCORES, "ents_strict": {"p": 0.95, "r": 0.9, "f": 0.924}})
    start = time.perf_counter()
    path = package_pipeline(folder / "model/model-best", folder / "packages", NAME, "0.1.0", "es",
                            folder / "synthetic.json", gold_scores=folder / "gold.json", data_kind="synthetic",
                            training_data="Six synthetic test notes", corpus_report=folder / "report.json",
                            base_model_licence="Gemma Terms of Use", data_licence="CC BY 4.0")
    print(f"packaged in {time.perf_counter() - start:.1f} s")
    return path


def test_wheel_holds_the_code_the_meta_and_no_note_text(wheel):
    assert wheel.name == f"{NAME}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = json.loads(z.read(f"{NAME}/meta.json"))
        raw = b"".join(z.read(n) for n in names if n.endswith(("meta.json", "README.md", "LICENSES_SOURCES")))
    for module in ("__init__", "__main__", "functions", "deid_rules", "deid_component", "deidentify"):
        assert f"{NAME}/{module}.py" in names
    assert meta["pipeline"] == ["tok2vec", "ner", "deid_rules", "deid_transform"]
    assert meta["performance"]["ents_f"] == 0.847 and meta["performance"]["gold_ents_f"] == 0.924
    assert meta["performance"]["leak_score"] == 0.02
    assert meta["training_data"]["kind"] == "synthetic"
    assert meta["training_data"]["sizes"]["train"]["documents"] == 6
    assert {s["license"] for s in meta["sources"]} >= {"Gemma Terms of Use", "CC BY 4.0"}
    assert any(r.startswith("spacy>=") for r in meta["requirements"])
    assert any(r.startswith("Faker>=") for r in meta["requirements"])
    for text, _ in NOTES:  # never any note text in what describes the package
        assert text[:20].encode() not in raw and b"example.com" not in raw


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_deidentifies(wheel, tmp_path):
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # spaCy and Faker come from the package index (about 20 s with pip's cache).
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    print(f"venv + pip install in {time.perf_counter() - start:.1f} s")
    located = subprocess.run([python, "-c", f"import {NAME}; print({NAME}.__file__)"], check=True, env=env,
                             cwd=tmp_path, capture_output=True, text=True).stdout
    assert located.startswith(str(venv))  # installed into the fresh venv, not found elsewhere

    script = textwrap.dedent(f"""
        import json, sys, spacy
        nlp = spacy.load("{NAME}")
        texts = json.loads(sys.argv[1])
        out = []
        for text, doc in zip(texts, nlp.pipe(texts, batch_size=2)):
            out.append({{"ents": [(e.text, e.label_) for e in doc.ents], "deidentified": doc._.deidentified,
                         "pipe_names": nlp.pipe_names}})
        print(json.dumps(out))
    """)
    texts = [text for text, _ in NOTES]
    result = subprocess.run([python, "-c", script, json.dumps(texts)], check=True, env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    docs = json.loads(result.stdout.strip().splitlines()[-1])
    for text, doc in zip(texts, docs):
        assert doc["pipe_names"] == ["tok2vec", "ner", "deid_rules", "deid_transform"]
        assert doc["ents"], "the rules find the e-mail address and the date"
        assert doc["deidentified"] != text
        for ent_text, label in doc["ents"]:
            if label != "SEXO_SUJETO_ASISTENCIA":  # one-letter values may recur by chance
                assert ent_text not in doc["deidentified"]

    notes, out = tmp_path / "notes", tmp_path / "out"
    notes.mkdir()
    for i, text in enumerate(texts):
        (notes / f"note{i}.txt").write_text(text, encoding="utf-8")
    run = subprocess.run([python, "-m", NAME, "deidentify", str(notes), str(out), "--mode", "redact",
                          "--spans-output", str(tmp_path / "spans.jsonl")],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    for i, text in enumerate(texts):
        redacted = (out / f"note{i}.txt").read_text(encoding="utf-8")
        assert redacted != text and "example" not in redacted and "[" in redacted
    assert len(list(srsly.read_jsonl(tmp_path / "spans.jsonl"))) == len(texts)
