"""What the corpus-conversion tests share: small corpora written to tmp_path, a run of
`convert` that returns its report and documents, and the check that a message names a file
and line (never the corpus's text)."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from deid_synthesis.corpus.convert import convert, make_nlp

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="module")
def nlp():
    return make_nlp("es")


def load(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))


def ents(docs):
    return [(e.label_, e.text) for d in docs for e in d.ents]


def run(tmp_path, src, fmt, **kwargs):
    out = tmp_path / "out.spacy"
    report = convert(src, out, fmt, kwargs.pop("lang", "es"), **kwargs)
    return report, load(out)


def assert_names(err, path, line=None):
    message = str(err.value)
    assert Path(path).name in message
    if line is not None:
        assert f"{Path(path).name}:{line}" in message


GOOD_TXT = "Paciente Juan Pérez, de 45 años.\n"


GOOD_ANN = "T1\tNOMBRE 9 19\tJuan Pérez\nT2\tEDAD 24 31\t45 años\n"


BAD_TXT = "Vive en Madrid con Ana.\n"  # Madrid 8-14, Ana 19-22


def brat(tmp_path, bad_ann, bad_txt=BAD_TXT, encoding="utf-8"):
    folder = tmp_path / "brat"
    folder.mkdir()
    (folder / "a_good.txt").write_text(GOOD_TXT, encoding="utf-8")
    (folder / "a_good.ann").write_text(GOOD_ANN, encoding="utf-8")
    (folder / "b_bad.txt").write_bytes(bad_txt.encode(encoding))
    if bad_ann is not None:
        (folder / "b_bad.ann").write_bytes(bad_ann.encode(encoding))
    return folder


def one_brat(tmp_path, text, ann):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "x.txt").write_text(text, encoding="utf-8")
    (folder / "x.ann").write_text(ann, encoding="utf-8")
    return folder


def conll(tmp_path, lines, name="c.conll"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


JSONL_GOOD = {"id": "g", "text": "Paciente Juan Pérez.", "spans": [{"start": 9, "end": 19, "label": "NOMBRE"}]}


def jsonl(tmp_path, bad_line, name="d.jsonl"):
    path = tmp_path / name
    lines = [json.dumps(JSONL_GOOD), bad_line, json.dumps({**JSONL_GOOD, "id": "h"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


JSONL_CASES = {
    "malformed_line": '{"text": "Ana", "spans": [',
    "offset_out_of_range": json.dumps(
        {"text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC"},
                                            {"start": 8, "end": 40, "label": "LOC"}]}),
    "text_mismatch": json.dumps(
        {"text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC", "text": "Lun"}]}),
}
