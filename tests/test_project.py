"""The `all` workflow of project.yml, end to end on a small demo corpus, in a copy of the project."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srsly

from deid_synthesis.generation.tiny_model import build_tiny_model
from deid_synthesis.corpus.demo import generate_split

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_all_workflow_on_the_demo_corpus(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts", "src"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # A tiny randomly initialised causal LM stands in for Gemma (the real loading, LoRA and
    # generation code runs; only the weights are small).
    tiny = build_tiny_model(tmp_path / "tiny-lm", [note["text"] for note in generate_split("es", "train", 30)])
    overrides = ["--vars.max_steps=4", "--vars.demo_train=20", "--vars.demo_dev=6", "--vars.demo_test=6",
                 f"--vars.base_model={tiny}", "--vars.adapt_max_steps=2", "--vars.max_new_tokens=32"]
    result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = srsly.read_json(project / "corpus/demo-es/report.json")
    assert report["train"]["documents"] == 20 and report["test"]["entities"] > 0
    scores = srsly.read_json(project / "metrics/demo-es/ner_cpu.json")
    assert scores["n_docs"] == 6 and set(scores) >= {"ents_strict", "token", "spans_merged", "leak"}
    assert (project / "training/demo-es/ner_cpu/model-best/meta.json").exists()
    # The synthetic loop: adapter, notes, machine-annotated corpus, privacy figures, synthetic model.
    assert srsly.read_json(project / "training/demo-es/adapter-default/manifest.json")["base_model"]
    assert len(list(srsly.read_jsonl(project / "synthetic/demo-es/default/samples.jsonl"))) > 0
    assert "ngram" in srsly.read_json(project / "metrics/demo-es/privacy-default.json")
    membership = srsly.read_json(project / "metrics/demo-es/membership-default.json")
    assert 0 <= membership["auc"] <= 1 and membership["members"] > 0 and membership["non_members"] == 6
    synthetic = srsly.read_json(project / "metrics/demo-es/synthetic-default-ner_cpu.json")
    assert synthetic["n_docs"] == 6
    table = (project / "metrics/results.md").read_text()
    # Our strict figures and spacy evaluate's agree on the same model and data.
    assert "| demo-es | ner_cpu |" in table and "| demo-es | synthetic-default-ner_cpu |" in table
    assert "| NO |" not in table and "| yes |" in table
    # The run's report: Markdown with its PNG plots, numbers read from the JSON outputs.
    folder = project / "reports/demo-es/default-ner_cpu"
    markdown = (folder / "report.md").read_text()
    for png in ("f1_per_label.png", "ratios.png", "entities_per_1k.png", "adapter_loss.png"):
        assert (folder / png).read_bytes().startswith(b"\x89PNG") and png in markdown
    overall = srsly.read_json(folder / "report.json")["overall"]["strict_f"]
    assert overall["gold"] == scores["ents_strict"]["f"] and overall["synthetic"] == synthetic["ents_strict"]["f"]
    if scores["ents_strict"]["f"]:  # a 4-step gold model may find nothing: no ratio then
        assert overall["ratio"] == pytest.approx(synthetic["ents_strict"]["f"] / scores["ents_strict"]["f"])
    # A second run finds nothing changed and re-runs nothing.
    again = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
                           capture_output=True, text=True, cwd=project)
    assert again.returncode == 0 and "Skipping 'train'" in again.stdout
    # The corpus to share: its PHI replaced, then measured like any run.
    for command, run in (("pseudonymize-synthetic", "default"), ("privacy", "default-pseudo")):
        done = subprocess.run([sys.executable, "-m", "spacy", "project", "run", command, str(project), *overrides,
                               f"--vars.synth_run={run}", "--vars.adapter_run=default"],
                              capture_output=True, text=True, cwd=project)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pseudo = srsly.read_json(project / "corpus/demo-es/synthetic-default-pseudo/annotate.json")["pseudonymized"]
    assert pseudo["gold_strings_avoided"] > 0 and pseudo["misaligned"] == 0
    assert "phi" in srsly.read_json(project / "metrics/demo-es/privacy-default-pseudo.json")
    assert pseudo["left"]["occurrences"]["verbatim"] == 0
    # The release gate: an impossible threshold refuses the run (nothing written); forced, the
    # bundle is built and its datasheet says so.
    release = [sys.executable, "-m", "spacy", "project", "run", "release", str(project), *overrides,
               "--vars.synth_run=default-pseudo", "--vars.adapter_run=default", "--vars.release_max_mia_auc=-1"]
    refused = subprocess.run(release, capture_output=True, text=True, cwd=project)
    assert refused.returncode != 0 and "Release refused: membership" in refused.stdout
    assert not (project / "release/demo-es/default-pseudo").exists()
    forced = subprocess.run(release + ["--vars.release_force=1"], capture_output=True, text=True, cwd=project)
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    bundle = project / "release/demo-es/default-pseudo"
    assert "FORCED RELEASE: failed checks: membership" in (bundle / "datasheet.md").read_text()
    assert (bundle / "SHA256SUMS").read_text().count("\n") == 5


def test_every_dep_and_output_is_one_path():
    """A bare "${vars.x}" followed by an item starting with "${" is joined into one "a, b" path by
    the config system, and weasel then reports a missing dependency that is not missing."""
    from weasel.util import load_project_config

    config = load_project_config(ROOT)
    joined = [(c["name"], p) for c in config["commands"] for p in c.get("deps", []) + c.get("outputs", []) if ", " in p]
    assert not joined
