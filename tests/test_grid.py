"""The ablation grid on a tiny demo corpus: a tiny random causal LM, spaCy NER trained for a few
steps, 2 adaptation shares x 2 seeds; the cache (a second run re-runs nothing, a new seed runs
only its cells), the outputs, and bad input refused before anything runs."""
import csv
import os
from pathlib import Path

import pytest
import spacy
import srsly
import torch
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

from deid_synthesis.generation.adapt import documents_hash, select_documents
from deid_synthesis.generation.tiny_model import build_tiny_model
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.demo import generate_split
from deid_synthesis.evaluate import evaluate
from deid_synthesis.grid import GridError, make_grid, run_grid
from deid_synthesis.train import timed_train
from scripts.grid import main

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Demo corpus (12 / 3 / 3 notes), gold annotator and its scores, tiny LM."""
    folder = tmp_path_factory.mktemp("grid")
    for split, n in (("train", 12), ("dev", 3), ("test", 3)):
        srsly.write_jsonl(folder / f"{split}.jsonl", generate_split("es", split, n, seed=0))
        convert(folder / f"{split}.jsonl", folder / "corpus" / f"{split}.spacy", "jsonl", "es")
    corpus = folder / "corpus"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        timed_train(ROOT / "configs/ner_cpu.cfg", folder / "gold", {
            "paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy"),
            "training.max_steps": 10, "training.eval_frequency": 5})
    # Ten steps leave the gold model near F1 0: its scores file gets fixed figures, for readable ratios.
    scores = evaluate(spacy.load(folder / "gold/model-best"), corpus / "test.spacy")
    scores["ents_strict"]["f"], scores["token"]["f"] = 0.8, 0.9
    srsly.write_json(folder / "gold.json", scores)
    texts = [note["text"] for note in srsly.read_jsonl(folder / "train.jsonl")]
    build_tiny_model(folder / "lm", texts)
    return folder


def grid_options(project, **changes):
    corpus = project / "corpus"
    options = dict(
        dataset="demo-es", lang="es", config=ROOT / "configs/ner_cpu.cfg", fractions="0,0.5", volumes="0.05",
        seeds="0,1", annotator_fractions="1.0", base_models=str(project / "lm"), gen_vocabularies="full",
        adapt_epochs=1.0, adapt_max_steps=1, adapt_seq_len=32, adapt_batch_size=2, adapt_precision="fp32",
        lora_rank=8, lora_alpha=32, max_new_tokens=16, train_steps=10, annotator_steps=10,
        transformer_model="unused", max_words=128, train=corpus / "train.spacy", dev=corpus / "dev.spacy",
        test=corpus / "test.spacy", gold_model=project / "gold/model-best", gold_metrics=project / "gold.json",
        generate_config=ROOT / "configs/generate.cfg", output=project / "out", gpu_id=-1, threads=1, n_process=1)
    options.update(changes)
    return options


@pytest.fixture(scope="module")
def first_run(project):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        return run_grid(make_grid(**grid_options(project)), silent=True)


def ran(log, step=None):
    return [e for e in log if e["action"] == "ran" and (step is None or e["step"] == step)]


def read_csv(path):
    with path.open(encoding="utf8") as f:
        return list(csv.DictReader(f))


def test_the_grid_writes_one_row_per_cell(project, first_run):
    out = project / "out"
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4
    assert {(r["fraction"], r["seed"]) for r in rows} == {("0.0", "0"), ("0.0", "1"), ("0.5", "0"), ("0.5", "1")}
    for row in rows:
        assert row["volume"] == "0.05" and row["base_model"] == str(project / "lm") and row["gen_vocabulary"] == "full"
        assert 0 <= float(row["strict_f1"]) <= 1 and 0 <= float(row["token_f1"]) <= 1
        assert float(row["gold_token_f1"]) == 0.9 and float(row["annotator_strict_f1"]) == 0.8
        assert float(row["ratio_token_f1"]) == pytest.approx(float(row["token_f1"]) / 0.9, abs=1e-4)
        assert int(row["synthetic_words"]) > 0 and 0 <= float(row["ngram_recall_5"]) <= 1
        assert row["identifying_phi_reproduced"] != "" and float(row["seconds_train"]) > 0
    assert srsly.read_json(out / "results.json")["rows"] == first_run["rows"]
    # Fraction 0 trains no adapter: one shared by both seeds; fraction 0.5 has one per seed.
    assert len(ran(first_run["log"], "adapters")) == 3
    for step in ("synthetic", "corpus", "models", "metrics"):
        assert len(ran(first_run["log"], step)) == 4, step
    assert len(ran(first_run["log"], "subsets")) == 1


def test_seeds_share_the_documents_of_a_fraction(project, first_run):
    """The documents come from the data seed, whatever the repeated seed: as in the paper."""
    adapters = {(r["fraction"], r["seed"]): r["adapter_key"] for r in first_run["rows"]}
    manifests = [srsly.read_json(project / "out/adapters" / adapters[(0.5, s)] / "manifest.json") for s in (0, 1)]
    docs = list(DocBin(store_user_data=True).from_disk(project / "corpus/train.spacy").get_docs(spacy.blank("es").vocab))
    expected = documents_hash([str(docs[i].user_data["id"]) for i in select_documents(len(docs), 0.5, 0)])
    assert manifests[0]["documents_hash"] == manifests[1]["documents_hash"] == expected
    assert manifests[0]["hyperparameters"]["seed"] == 0 and manifests[1]["hyperparameters"]["seed"] == 1
    assert adapters[(0.0, 0)] == adapters[(0.0, 1)]


def test_summary_and_plot(project, first_run):
    summary = (project / "out/summary.md").read_text(encoding="utf8")
    assert "| fraction | seeds | strict F1 | token F1 |" in summary
    body = [line for line in summary.splitlines() if line.startswith("| 0")]
    assert len(body) == 2 and all(" ± " in line and "| 2 |" in line for line in body)
    assert "| gold model | | 0.800 | 0.900 |" in summary
    assert (project / "out/grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_reruns_nothing_and_a_new_seed_only_its_cells(project, first_run):
    out = project / "out"
    model_times = {p: p.stat().st_mtime_ns for p in out.glob("models/*/result.json")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        again = run_grid(make_grid(**grid_options(project)), silent=True)
        assert ran(again["log"]) == [] and len(again["log"]) > 0
        assert again["rows"] == first_run["rows"]
        more = run_grid(make_grid(**grid_options(project, seeds="0,1,2")), silent=True)
    assert {p: p.stat().st_mtime_ns for p in model_times} == model_times
    assert len(ran(more["log"], "adapters")) == 1  # fraction 0.5, seed 2; fraction 0 is shared
    for step in ("synthetic", "corpus", "models", "metrics"):
        assert len(ran(more["log"], step)) == 2, step
    assert all("seed 2" in e["what"] or e["step"] in ("metrics", "privacy") for e in ran(more["log"]))
    rows = read_csv(out / "results.csv")
    assert len(rows) == 6 and {r["seed"] for r in rows} == {"0", "1", "2"}
    assert "| 3 |" in (out / "summary.md").read_text(encoding="utf8")


@pytest.mark.parametrize("change,message", [
    ({"fractions": "0.05,1.5"}, "fraction 1.5 is outside"),
    ({"volumes": "0"}, "volume 0.0 is not positive"),
    ({"volumes": "-1,0.1"}, "volume -1.0 is not positive"),
    ({"fractions": "five"}, "'five' is not a valid value"),
    ({"gen_vocabularies": "full,tiny"}, "vocabulary 'tiny'"),
    ({"annotator_fractions": "0"}, "annotator fraction 0.0"),
    ({"adapt_precision": "fp16"}, "adapter precision 'fp16': use fp32, bf16, auto"),
    ({"adapt_learning_rate": 0.0}, "adapter learning rate 0.0 is not positive"),
])
def test_bad_input_is_refused_before_anything_runs(project, tmp_path, change, message):
    with pytest.raises(GridError, match=message):
        make_grid(**grid_options(project, output=tmp_path / "never", **change))
    assert not (tmp_path / "never").exists()


def test_auto_precision_is_resolved_for_the_cache_key(project, tmp_path, monkeypatch):
    import deid_synthesis.generation.adapt as adapt_module

    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(adapt_module, "cpu_has_bf16", lambda: has_bf16)
        grid = make_grid(**grid_options(project, output=tmp_path / "never", adapt_precision="auto"))
        assert grid["adapt_precision"] == expected


def test_cli_names_the_problem(tmp_path):
    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, ["nothing-here", "--fractions", "0.2,2", "--corpus-dir", str(tmp_path)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "fraction 2.0 is outside [0, 1]" in output and "train.spacy not found" in output
    assert not os.path.exists("grid/nothing-here")
