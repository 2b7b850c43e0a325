"""The de-identification benchmark runs end to end on a tiny pipeline and reports every figure."""
import json

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from deid_synthesis.bench_deid import bench
from scripts.bench_deid import main

NOTES = {
    "a": "Paciente Ana García, 45 años, ingresa el 12/03/2019. Tel 612 345 678.",
    "b": "Control de Luis Pérez el 14/03/2019 en Madrid.",
    "c": "Sin datos personales.",
}
PATTERNS = [("NOMBRE_SUJETO_ASISTENCIA", "Ana García"), ("NOMBRE_SUJETO_ASISTENCIA", "Luis Pérez"),
            ("TERRITORIO", "Madrid")]


def setup(tmp_path):
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": l, "pattern": p} for l, p in PATTERNS])
    nlp.to_disk(tmp_path / "model")
    (tmp_path / "in").mkdir()
    docbin = DocBin(store_user_data=True)
    for doc_id, text in NOTES.items():
        (tmp_path / "in" / f"{doc_id}.txt").write_text(text, encoding="utf8")
        doc = nlp(text)
        doc.user_data["id"] = doc_id
        docbin.add(doc)
    docbin.to_disk(tmp_path / "test.spacy")


def test_bench_reports_end_to_end_ner_and_component_costs(tmp_path):
    setup(tmp_path)
    result = bench(str(tmp_path / "model"), tmp_path / "in", tmp_path / "test.spacy", repeat=2,
                   n_processes=(1,), silent=True, key=bytes(range(32)))
    tokens = sum(len(spacy.load(tmp_path / "model")(t)) for t in NOTES.values()) * 2
    assert result["end_to_end"]["1"]["documents"] == 6 and result["end_to_end"]["1"]["tokens"] == tokens
    assert result["ner_alone"]["documents"] == 6 and result["ner_alone"]["tokens"] == tokens
    assert result["components"]["tokens"] == tokens and result["components"]["entities"] > 6
    assert result["components"]["model_pipes"] == ["entity_ruler"]
    assert result["ratios"]["pseudonymization_share_of_ner"] >= 0
    assert set(result["targets"]) >= {"end_to_end_met", "pseudonymization_met"} and result["keyed"]
    assert result["end_to_end"]["1"]["tokens_per_second"] > 0 and result["ner_alone"]["tokens_per_second"] > 0


def test_bench_refuses_to_pseudonymize_without_a_key(tmp_path):
    setup(tmp_path)
    with pytest.raises(ValueError, match="needs a secret key"):
        bench(str(tmp_path / "model"), tmp_path / "in", tmp_path / "test.spacy", n_processes=(1,), silent=True)


def test_cli_writes_the_json_and_limits_documents(tmp_path):
    setup(tmp_path)
    app = __import__("typer").Typer()
    app.command()(main)
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, [str(tmp_path / "model"), str(tmp_path / "in"), str(tmp_path / "test.spacy"),
                                   "--limit", "2", "--n-process", "1", "--output", str(out),
                                   "--key-file", str(tmp_path / "cache/deid.key"), "--create-key"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["source_documents"] == 2 and data["ner_alone"]["documents"] == 2
    assert "Ana" not in res.output and "Madrid" not in res.output
    key = (tmp_path / "cache/deid.key").read_text().strip()
    assert len(key) == 64 and (tmp_path / "cache/deid.key").stat().st_mode & 0o777 == 0o600
    assert key not in res.output and key not in out.read_text() and data["keyed"]
