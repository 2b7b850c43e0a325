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


def write_notes_jsonl(path, notes):
    path.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in notes.items()),
                    encoding="utf8")
    return path


def test_a_jsonl_input_gives_the_figures_of_the_same_notes_as_a_folder(tmp_path):
    setup(tmp_path)
    notes = write_notes_jsonl(tmp_path / "test.jsonl", NOTES)
    args = dict(repeat=2, n_processes=(1, 2), silent=True, key=bytes(range(32)))
    folder = bench(str(tmp_path / "model"), tmp_path / "in", tmp_path / "test.spacy", **args)
    jsonl = bench(str(tmp_path / "model"), notes, tmp_path / "test.spacy", **args)
    for n in ("1", "2"):
        for field in ("documents", "tokens", "failed"):
            assert jsonl["end_to_end"][n][field] == folder["end_to_end"][n][field]
    assert jsonl["end_to_end"]["1"]["documents"] == 6 and jsonl["end_to_end"]["2"]["same_output_as_1"]
    assert jsonl["source_documents"] == folder["source_documents"] == 3
    for part in ("ner_alone", "components"):
        assert (jsonl[part]["documents"], jsonl[part]["tokens"]) == (folder[part]["documents"], folder[part]["tokens"])
    assert jsonl["components"]["entities"] == folder["components"]["entities"]
    limited = bench(str(tmp_path / "model"), notes, tmp_path / "test.spacy", limit=2, n_processes=(1,),
                    silent=True, key=bytes(range(32)))
    assert limited["source_documents"] == 2 and limited["ner_alone"]["documents"] == 2


def test_a_bad_jsonl_line_is_named_by_file_and_line(tmp_path):
    setup(tmp_path)
    notes = write_notes_jsonl(tmp_path / "test.jsonl", NOTES)
    with notes.open("a", encoding="utf8") as out:
        out.write('{"id": "d", "text": "Ana García en Madrid"\n')
    with pytest.raises(ValueError, match=r"test\.jsonl:4: invalid JSON") as err:
        bench(str(tmp_path / "model"), notes, tmp_path / "test.spacy", n_processes=(1,), silent=True,
              key=bytes(range(32)))
    assert "Ana" not in str(err.value)


def test_an_empty_input_is_refused_with_a_message(tmp_path):
    setup(tmp_path)
    app = __import__("typer").Typer()
    app.command()(main)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf8")
    for empty, message in [("empty", "no .txt files"), ("empty.jsonl", "no JSONL records")]:
        res = CliRunner().invoke(app, [str(tmp_path / "model"), str(tmp_path / empty), str(tmp_path / "test.spacy"),
                                       "--n-process", "1", "--insecure-demo-key"])
        output = " ".join(res.output.split())  # wasabi wraps long messages
        assert res.exit_code == 1 and message in output and empty in output
