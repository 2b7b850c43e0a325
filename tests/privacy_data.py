"""Shared data of the privacy tests (tests/test_privacy.py, tests/test_privacy_prompts.py):
gold notes with hand-counted PHI strings, synthetic notes with planted leaks, the dev split."""
import pytest
import srsly
import typer
from spacy.tokens import DocBin

from deid_synthesis.corpus.convert import make_nlp
from scripts.privacy import main
from tests.deid_pipelines import doc_with_ents

# 45 words, no punctuation inside: runs of it are easy to cut by word.
REAL_LONG = ("la exploración física muestra abdomen blando y depresible doloroso a la palpación en fosa ilíaca "
             "derecha con signo de blumberg positivo por lo que se solicita ecografía abdominal urgente que "
             "confirma apendicitis aguda y se decide intervención quirúrgica programada para el día siguiente "
             "sin complicaciones durante el postoperatorio inmediato")


def gold_doc(nlp, text, spans, doc_id):
    """spans: (substring, label, which occurrence)."""
    doc = doc_with_ents(nlp, text, [(label, sub, k) for sub, label, k in spans])
    doc.user_data["id"] = doc_id
    return doc


@pytest.fixture(scope="module")
def nlp():
    return make_nlp("es")


@pytest.fixture(scope="module")
def gold(nlp):
    return gold_docs(nlp)


@pytest.fixture()
def files(gold, tmp_path):
    return write_files(gold, tmp_path)


def gold_docs(nlp):
    """Four gold notes: a full name, a common town in three, a sex value in two, and 45 plain words."""
    return [
        gold_doc(nlp, "Paciente Ana García López, NHC 1234567, vive en Madrid.",
                 [("Ana García López", "NOMBRE", 0), ("1234567", "ID", 0), ("Madrid", "TERRITORIO", 0)], "g0"),
        gold_doc(nlp, "Mujer de 45 años de Madrid, atendida por el Dr. Pérez.",
                 [("Mujer", "SEXO", 0), ("45 años", "EDAD", 0), ("Madrid", "TERRITORIO", 0),
                  ("Pérez", "NOMBRE_PS", 0)], "g1"),
        gold_doc(nlp, "Sexo: M. Remitida desde Madrid.", [("M", "SEXO", 0), ("Madrid", "TERRITORIO", 0)], "g2"),
        gold_doc(nlp, "Sexo: M. Mujer. " + REAL_LONG + ".", [("M", "SEXO", 0), ("Mujer", "SEXO", 0)], "g3"),
    ]


SYNTH = [
    "Ana García López ingresa en Madrid.",          # s0: the full name (identifying) and Madrid (common)
    "Visto por el Dr. Pérez, 45 años.",             # s1: Pérez and 45 años
    "Pérezgil y Ana García. Teléfono 12345678.",    # s2: nothing on word boundaries, no full name
    "traslado a madrid",                            # s3: Madrid only when case is ignored
]


def synth_rows():
    run = REAL_LONG.split()
    return [
        {"id": "clean", "text": "Paciente estable, sin cambios en la medicación.", "seed": 1},
        {"id": "name", "text": "Control de Ana García López en consulta.", "seed": 2},
        {"id": "run25", "text": "Nota. " + " ".join(run[5:30]) + ". Alta.", "seed": 3},
        {"id": "run19", "text": "Nota. " + " ".join(run[5:24]) + ". Alta.", "seed": 4},
        {"id": "madrid", "text": "Vive en Madrid con su hija.", "seed": 5,
         "provenance": {"base_model": "gemma", "sampling": {"top_p": 0.95}}},
    ]


def dev_docs(nlp):
    """The dev split the prompts came from: two notes, each with its own patient's name."""
    return [
        gold_doc(nlp, "Paciente Beatriz Soto Ruiz ingresa hoy. Vive en Madrid.",
                 [("Beatriz Soto Ruiz", "NOMBRE", 0), ("Madrid", "TERRITORIO", 0)], "d0"),
        gold_doc(nlp, "Nombre: Carlos Núñez. Varón.", [("Carlos Núñez", "NOMBRE", 0), ("Varón", "SEXO", 0)], "d1"),
    ]


def dev_rows():
    return [
        # The old prompts: a real name (cut off by the prompt's end), copied into the sample.
        {"id": "d0#0", "prompt_id": "d0", "prompt": "Paciente Beatriz Soto",
         "text": "Paciente Beatriz Soto Ruiz ingresa hoy. Vive en su casa."},
        # A surrogate prompt; the sample reproduces a training patient's name.
        {"id": "d1#0", "prompt_id": "d1", "prompt": "Nombre: Pedro Gil.", "text": "Nombre: Pedro Gil. Ana García López."},
        # The prompt field says a surrogate, the text opens with the real name (case and accents differ).
        {"id": "d1#1", "prompt_id": "d1", "prompt": "Nombre: Pedro Gil.", "text": "NOMBRE: carlos nuñez, control."},
        {"id": "x", "text": "Sin prompt_id: not checked."},
    ]


def write_files(gold, tmp_path):
    """The synthetic notes (`synth_rows`) as JSONL and the gold docs as a DocBin; their paths."""
    synth, gold_path = tmp_path / "synthetic.jsonl", tmp_path / "train.spacy"
    srsly.write_jsonl(synth, synth_rows())
    DocBin(docs=gold, store_user_data=True).to_disk(gold_path)
    return synth, gold_path


def cli():
    app = typer.Typer()
    app.command()(main)
    return app
