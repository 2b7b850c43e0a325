"""`spacy pretrain` with the project's CPU config: raw text from DocBins and JSONL
(deid_synthesis.corpus.raw_text), one pretraining epoch on a tiny corpus, then `spacy train`
with the weights as init_tok2vec (the pretrain / train-pretrained commands)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly

from clinical_deid.io import DataError
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.demo import generate_split
from deid_synthesis.corpus.raw_text import write_raw_texts
from deid_synthesis.train import timed_train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain")
    srsly.write_jsonl(folder / "train.jsonl", generate_split("es", "train", 8, seed=0))
    convert(folder / "train.jsonl", folder / "train.spacy", "jsonl", "es")
    srsly.write_jsonl(folder / "samples.jsonl", [{"id": "s0", "text": "Paciente de 45 años, sin antecedentes."},
                                                 {"id": "s1", "text": "   "}])
    return folder


def test_raw_texts_from_docbins_and_jsonl(tiny, tmp_path):
    out = tmp_path / "raw.jsonl"
    counts = write_raw_texts([tiny / "train.spacy", tiny / "samples.jsonl"], out)
    assert counts == {str(tiny / "train.spacy"): 8, str(tiny / "samples.jsonl"): 1}  # the blank note skipped
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 9 and all(set(row) == {"text"} for row in rows)
    assert rows[-1]["text"] == "Paciente de 45 años, sin antecedentes."


def test_raw_texts_refuse_other_files_and_no_notes(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="notes.txt: expected a DocBin"):
        write_raw_texts([tmp_path / "notes.txt"], tmp_path / "raw.jsonl")
    srsly.write_jsonl(tmp_path / "blank.jsonl", [{"text": " "}])
    with pytest.raises(DataError, match="no notes in"):
        write_raw_texts([tmp_path / "blank.jsonl"], tmp_path / "raw.jsonl")
    assert not (tmp_path / "raw.jsonl").exists()


def test_pretrained_weights_initialise_the_cpu_config(tiny, tmp_path):
    write_raw_texts([tiny / "train.spacy", tiny / "samples.jsonl"], tmp_path / "raw.jsonl")
    pretrain = subprocess.run(
        [sys.executable, "-m", "spacy", "pretrain", str(ROOT / "configs/ner_cpu.cfg"), str(tmp_path / "pre"),
         "--paths.raw_text", str(tmp_path / "raw.jsonl"), "--pretraining.max_epochs", "1"],
        capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert pretrain.returncode == 0, pretrain.stdout[-2000:] + pretrain.stderr[-2000:]
    weights = tmp_path / "pre" / "model-last.bin"
    assert weights.is_file()
    timed_train(ROOT / "configs/ner_cpu.cfg", tmp_path / "model", {
        "paths.train": str(tiny / "train.spacy"), "paths.dev": str(tiny / "train.spacy"),
        "paths.init_tok2vec": str(weights), "training.max_steps": 2, "training.eval_frequency": 1})
    nlp = spacy.load(tmp_path / "model" / "model-best")
    assert nlp.pipe_names == ["tok2vec", "ner"]
    assert nlp.config["paths"]["init_tok2vec"] == str(weights)
