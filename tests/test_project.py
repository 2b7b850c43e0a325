"""The `all` workflow of project.yml, end to end on a small demo corpus, in a copy of the project."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srsly

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_all_workflow_on_the_demo_corpus(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project)
    for folder in ("configs", "scripts"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    overrides = ["--vars.max_steps=4", "--vars.demo_train=20", "--vars.demo_dev=6", "--vars.demo_test=6"]
    result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = srsly.read_json(project / "corpus/demo-es/report.json")
    assert report["train"]["documents"] == 20 and report["test"]["entities"] > 0
    scores = srsly.read_json(project / "metrics/demo-es/ner_cpu.json")
    assert scores["n_docs"] == 6 and set(scores) >= {"ents_strict", "token", "spans_merged", "leak"}
    assert (project / "training/demo-es/ner_cpu/model-best/meta.json").exists()
    table = (project / "metrics/results.md").read_text()
    # Our strict figures and spacy evaluate's agree on the same model and data.
    assert "| demo-es | ner_cpu |" in table and "| yes |" in table
    # A second run finds nothing changed and re-runs nothing.
    again = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "all", str(project), *overrides],
                           capture_output=True, text=True, cwd=project)
    assert again.returncode == 0 and "Skipping 'train'" in again.stdout
