"""Shared by the production command's tests: notes, a stand-in pipeline, and helpers to run it."""
import json
from pathlib import Path

import pytest
import spacy

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.deidentify import deidentify_main

ROOT = Path(__file__).resolve().parent.parent
NOTES = {
    "a.txt": "Paciente Ana García, 45 años, ingresa el 12/03/2019. Tel 612 345 678.",
    "sub/b.txt": "Control de Luis Pérez el 14/03/2019 en Madrid. Correo luis.perez@correo.es.",
    "c.txt": "Sin datos personales.",
}
PATTERNS = [("NOMBRE_SUJETO_ASISTENCIA", "Ana García"), ("NOMBRE_SUJETO_ASISTENCIA", "Luis Pérez"),
            ("EDAD_SUJETO_ASISTENCIA", "45 años"), ("FECHAS", "12/03/2019"), ("FECHAS", "14/03/2019"),
            ("TERRITORIO", "Madrid")]
PHI = ["Ana García", "Luis Pérez", "12/03/2019", "14/03/2019", "Madrid", "612 345 678", "luis.perez@correo.es"]
KEY = bytes(range(32))  # a test key: pseudonymizing needs one
SECRET_WORD = "Zorbaquixtle"  # a word of a note that no message may carry


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained pipeline's stand-in: tokenizer + entity_ruler, no deid components yet."""
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": l, "pattern": p} for l, p in PATTERNS])
    path = tmp_path_factory.mktemp("model") / "model"
    nlp.to_disk(path)
    return path


def write_notes(folder, notes=NOTES):
    for rel, text in notes.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf8")


def run(model, inp, out, **kwargs):
    """deidentify_main, silent, with the test key unless told otherwise."""
    kwargs.setdefault("key", KEY)
    return deidentify_main(model, inp, out, silent=True, **kwargs)


def jsonl_input(path):
    """The notes as JSONL with a bad JSON line, a record without text and a trailing blank line."""
    rows = [json.dumps({"id": f"n{i}", "text": text, "site": "H1"}, ensure_ascii=False) for i, text in enumerate(NOTES.values())]
    rows.insert(1, '{"id": "broken", "text": ')  # bad JSON
    rows.insert(3, '{"id": "empty"}')  # no text field
    path.write_text("\n".join(rows) + "\n\n", encoding="utf8")
    return path


@spacy.Language.component("test_fails_on_boom")
def fails_on_boom(doc):
    if "BOOM" in doc.text:
        raise RuntimeError("cannot handle BOOM")
    return doc


class BatchFailsOnBoom:
    """Like spaCy's ner: a pipe() over batches and no error handler to set."""

    def __call__(self, doc):
        if "BOOM" in doc.text:
            raise RuntimeError("cannot handle BOOM")
        return doc

    def pipe(self, docs, batch_size=128):
        for batch in spacy.util.minibatch(docs, batch_size):
            for doc in batch:
                self(doc)
            yield from batch


@spacy.Language.factory("test_batch_fails_on_boom")
def make_batch_fails_on_boom(nlp, name):
    return BatchFailsOnBoom()


def cli(*args, env=None):
    """The command line in this process (test_command_line runs it as a subprocess)."""
    import typer
    from typer.testing import CliRunner

    from clinical_deid.deidentify import main

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, list(map(str, args)), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())
