"""Tests of the synthetic demo corpus (deid_synthesis.corpus.demo) and its step, scripts/demo_corpus.py."""

from __future__ import annotations

import json

import pytest
import spacy
import srsly

from deid_synthesis.corpus.demo import (
    LABELS,
    LABELS_ES,
    LABELS_SV,
    MAX_WORDS,
    MIN_WORDS,
    SPLITS,
    entity_counts,
    generate_corpus,
    generate_split,
    misaligned_spans,
    split_seed,
)
from scripts.demo_corpus import main

LANGS = ("es", "sv")


@pytest.fixture(scope="module")
def docs_200():
    """200 training documents per language (seed 0), generated once."""
    return {lang: generate_split(lang, "train", 200, seed=0) for lang in LANGS}


@pytest.fixture(scope="module")
def blank_nlp():
    return {lang: spacy.blank(lang) for lang in LANGS}


def test_label_sets():
    assert len(LABELS_ES) == 17 and len(set(LABELS_ES)) == 17
    assert set(LABELS_SV) == {
        "First_Name", "Last_Name", "Phone_Number", "Age",
        "Full_Date", "Date_Part", "Health_Care_Unit", "Location",
    }
    assert LABELS == {"es": LABELS_ES, "sv": LABELS_SV}


@pytest.mark.parametrize("lang", LANGS)
def test_deterministic_for_seed(lang):
    a = generate_split(lang, "dev", 15, seed=3)
    b = generate_split(lang, "dev", 15, seed=3)
    assert json.dumps(a) == json.dumps(b)
    c = generate_split(lang, "dev", 15, seed=4)
    assert [d["text"] for d in a] != [d["text"] for d in c]


@pytest.mark.parametrize("lang", LANGS)
def test_splits_differ_and_counts(lang):
    corpus = generate_corpus(lang, n_train=20, n_dev=7, n_test=5, seed=0)
    assert list(corpus) == list(SPLITS)
    assert [len(corpus[s]) for s in SPLITS] == [20, 7, 5]
    for split in SPLITS:
        ids = [d["id"] for d in corpus[split]]
        assert ids == [f"demo-{lang}-{split}-{i:04d}" for i in range(1, len(ids) + 1)]
    texts = {s: {d["text"] for d in corpus[s]} for s in SPLITS}
    assert not texts["train"] & texts["dev"]
    assert not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    assert len({split_seed(0, lang, s) for s in SPLITS}) == 3
    assert split_seed(0, "es", "train") != split_seed(0, "sv", "train")


@pytest.mark.parametrize("lang", LANGS)
def test_spans_valid_and_aligned(lang, docs_200, blank_nlp):
    nlp = blank_nlp[lang]
    for doc in docs_200[lang]:
        text = doc["text"]
        assert set(doc) == {"id", "text", "spans"}
        assert MIN_WORDS <= len(text.split()) <= MAX_WORDS
        assert doc["spans"], doc["id"]
        spacy_doc = nlp(text)
        prev_end = 0
        for span in doc["spans"]:
            start, end, label = span["start"], span["end"], span["label"]
            assert isinstance(start, int) and isinstance(end, int)
            assert 0 <= start < end <= len(text)
            assert start >= prev_end, f"overlap/unsorted in {doc['id']}"
            prev_end = end
            assert label in LABELS[lang]
            assert text[start:end] == text[start:end].strip()
            assert spacy_doc.char_span(start, end) is not None, (
                doc["id"], text[start:end], label
            )
        assert misaligned_spans(text, doc["spans"], lang) == []


def test_label_coverage(docs_200):
    es_labels = set(entity_counts(docs_200["es"]))
    sv_labels = set(entity_counts(docs_200["sv"]))
    assert len(es_labels) >= 10
    assert es_labels <= set(LABELS_ES)
    assert sv_labels == set(LABELS_SV)


def test_spanish_conventions(docs_200):
    """A few MEDDOCAN conventions the templates are meant to follow."""
    seen = {label: set() for label in LABELS_ES}
    for doc in docs_200["es"]:
        for s in doc["spans"]:
            seen[s["label"]].add(doc["text"][s["start"]:s["end"]])
    assert all(v.endswith("años") for v in seen["EDAD_SUJETO_ASISTENCIA"] if not v.isdigit())
    assert not any(v.startswith(("Dr.", "Dra.")) for v in seen["NOMBRE_PERSONAL_SANITARIO"])
    assert not any(v.startswith("el ") for v in seen["FECHAS"])
    assert "España" in seen["PAIS"]


def test_unknown_language():
    with pytest.raises(ValueError):
        generate_split("fr", "train", 1)


@pytest.mark.parametrize("lang", LANGS)
def test_cli_writes_three_files(lang, tmp_path, capsys):
    out = tmp_path / "demo"
    main(out, lang=lang, n_train=12, n_dev=4, n_test=3, seed=1)
    sizes = {"train": 12, "dev": 4, "test": 3}
    stdout = capsys.readouterr().out
    for split in SPLITS:
        path = out / f"{split}.jsonl"
        assert path.exists()
        docs = list(srsly.read_jsonl(path))
        assert len(docs) == sizes[split]
        assert docs[0]["id"] == f"demo-{lang}-{split}-0001"
        # The summary reports counts, never note text.
        assert docs[0]["text"].splitlines()[1] not in stdout
    flat = " ".join(stdout.split())  # wasabi wraps long lines at the terminal width
    assert "12 docs" in flat and "4 docs" in flat and "3 docs" in flat

    # Same arguments -> same bytes.
    out2 = tmp_path / "demo2"
    main(out2, lang=lang, n_train=12, n_dev=4, n_test=3, seed=1)
    for split in SPLITS:
        assert (out / f"{split}.jsonl").read_bytes() == (out2 / f"{split}.jsonl").read_bytes()
