"""Tests of clinical_deid.scoring and scripts/evaluate.py: hand-worked cases for every
measure, agreement with spaCy's own scorer, and the CLI writing JSON + Markdown."""

import json

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import fix_random_seed

from clinical_deid.scoring import merge_spans, score_docs
from deid_synthesis.evaluate import KEYS, evaluate, to_markdown, write_meddocan_brat
from scripts.evaluate import main


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("es")


def make(nlp, text, ents=()):
    """A doc of `text` with entities given as (substring, label); substrings are unique."""
    doc = nlp.make_doc(text)
    spans = []
    for sub, label in ents:
        start = text.index(sub)
        span = doc.char_span(start, start + len(sub), label=label)
        assert span is not None, f"{sub!r} is not token-aligned"
        spans.append(span)
    doc.ents = spans
    return doc


def close(scores, p, r, f):
    assert scores["p"] == pytest.approx(p)
    assert scores["r"] == pytest.approx(r)
    assert scores["f"] == pytest.approx(f)


TEXT = "Paciente Juan Pérez, de 45 años, vive en Madrid."
GOLD = [("Juan Pérez", "NOMBRE"), ("45 años", "EDAD"), ("Madrid", "TERRITORIO")]


def test_exact_match(nlp):
    s = score_docs([make(nlp, TEXT, GOLD)], [make(nlp, TEXT, GOLD)])
    # 3 gold, 3 predicted, all identical: every measure is 1.
    for key in ("ents_strict", "spans_strict", "spans_merged", "token"):
        close(s[key], 1, 1, 1)
    assert (s["ents_strict"]["tp"], s["ents_strict"]["fp"], s["ents_strict"]["fn"]) == (3, 0, 0)
    # Tokens: Juan, Pérez, 45, años, Madrid = 5 entity tokens.
    assert s["token"]["tp"] == 5
    assert s["ents_strict"]["per_label"]["EDAD"] == {
        "p": 1.0, "r": 1.0, "f": 1.0, "tp": 1, "fp": 0, "fn": 0, "support": 1
    }
    close(s["ents_strict"]["macro"], 1, 1, 1)
    # One sentence (one full stop), nothing missed.
    assert s["leak"] == {
        "fn": 0, "missed": 0, "gold_entities": 3, "sentences": 1, "leak_score": 0.0, "missed_per_label": {}
    }
    assert (s["n_docs"], s["n_docs_scored"]) == (1, 1)
    assert s["n_tokens"] == len(nlp.make_doc(TEXT))


def test_wrong_label_is_strict_miss_but_span_hit(nlp):
    text = "Vive en Madrid."
    gold = make(nlp, text, [("Madrid", "TERRITORIO")])
    pred = make(nlp, text, [("Madrid", "PAIS")])
    s = score_docs([gold], [pred])
    # Strict: tp 0, fp 1 (PAIS), fn 1 (TERRITORIO) -> 0/0/0.
    close(s["ents_strict"], 0, 0, 0)
    assert s["ents_strict"]["per_label"]["PAIS"]["fp"] == 1
    assert s["ents_strict"]["per_label"]["PAIS"]["support"] == 0
    assert s["ents_strict"]["per_label"]["TERRITORIO"]["fn"] == 1
    # Label ignored: same span -> 1/1/1, merged too.
    close(s["spans_strict"], 1, 1, 1)
    close(s["spans_merged"], 1, 1, 1)
    # Token "Madrid": gold TERRITORIO, pred PAIS -> fp 1 and fn 1 -> 0/0/0.
    assert (s["token"]["tp"], s["token"]["fp"], s["token"]["fn"]) == (0, 1, 1)
    # Masked under the wrong label is still masked: no leak.
    assert s["leak"]["missed"] == 0


def test_boundary_error(nlp):
    text = "Ingresó el 3 de marzo de 2019 en el hospital."
    gold = make(nlp, text, [("3 de marzo de 2019", "FECHAS")])
    pred = make(nlp, text, [("3 de marzo", "FECHAS")])
    s = score_docs([gold], [pred])
    # Spans differ: strict tp 0, fp 1, fn 1; label-free and merged the same.
    for key in ("ents_strict", "spans_strict", "spans_merged"):
        close(s[key], 0, 0, 0)
        assert (s[key]["tp"], s[key]["fp"], s[key]["fn"]) == (0, 1, 1)
    # Gold tokens 3 de marzo de 2019 (5); predicted 3 de marzo (3): tp 3, fp 0, fn 2
    # p = 3/3 = 1, r = 3/5 = 0.6, f = 2*0.6/1.6 = 0.75.
    close(s["token"], 1, 0.6, 0.75)
    assert s["token"]["per_label"]["FECHAS"]["support"] == 5
    # Partially found: not a leak.
    assert s["leak"]["missed"] == 0


def test_merged_spans(nlp):
    text = "Vive en Calle Mayor 5 de Madrid."
    gold = make(nlp, text, [("Calle Mayor 5", "CALLE"), ("Madrid", "TERRITORIO")])
    pred = make(nlp, text, [("Calle Mayor", "CALLE"), ("5", "CALLE"), ("Madrid", "TERRITORIO")])
    s = score_docs([gold], [pred])
    # Strict: Madrid hits; "Calle Mayor" and "5" are fp, "Calle Mayor 5" fn.
    # tp 1, fp 2, fn 1: p = 1/3, r = 1/2, f = 2*(1/6)/(5/6) = 0.4.
    close(s["ents_strict"], 1 / 3, 1 / 2, 0.4)
    close(s["spans_strict"], 1 / 3, 1 / 2, 0.4)
    # Merged: "Calle Mayor" + " " + "5" -> "Calle Mayor 5"; "de" (alphanumeric) keeps
    # Madrid apart. Both sides are {Calle Mayor 5, Madrid}: 1/1/1.
    close(s["spans_merged"], 1, 1, 1)
    assert (s["spans_merged"]["tp"], s["spans_merged"]["fp"], s["spans_merged"]["fn"]) == (2, 0, 0)
    # Tokens: Calle, Mayor, 5 CALLE and Madrid TERRITORIO all right: tp 4.
    close(s["token"], 1, 1, 1)
    assert s["token"]["tp"] == 4


def test_merge_spans_rule():
    # Punctuation and spaces merge, nothing between merges, a word does not.
    assert merge_spans("a, b", [(0, 1), (3, 4)]) == {(0, 4)}
    assert merge_spans("ab", [(0, 1), (1, 2)]) == {(0, 2)}
    assert merge_spans("a y b", [(0, 1), (4, 5)]) == {(0, 1), (4, 5)}
    assert merge_spans("a-b c", [(2, 3), (0, 1), (4, 5)]) == {(0, 5)}
    assert merge_spans("abc", []) == set()


def test_token_level_partial_overlap(nlp):
    text = "El médico Juan Pérez García atendió."
    gold = make(nlp, text, [("Juan Pérez García", "NOMBRE_PERSONAL_SANITARIO")])
    # The prediction is tokenised differently: "Juan" split into "Ju" + "an".
    words = ["El", "médico", "Ju", "an", "Pérez", "García", "atendió", "."]
    spaces = [True, True, False, True, True, True, False, False]
    pred = Doc(nlp.vocab, words=words, spaces=spaces)
    assert pred.text == text
    pred.ents = [pred.char_span(12, 20, label="NOMBRE_PERSONAL_SANITARIO"),  # "an Pérez"
                 pred.char_span(28, 35, label="PROFESION")]  # "atendió"
    s = score_docs([gold], [pred])
    # Gold tokens: Juan (first char "J" not covered -> O: fn), Pérez (covered: tp),
    # García (O: fn), atendió (gold O, pred PROFESION: fp).
    # tp 1, fp 1, fn 2: p = 1/2, r = 1/3, f = 2*(1/6)/(5/6) = 0.4.
    assert (s["token"]["tp"], s["token"]["fp"], s["token"]["fn"]) == (1, 1, 2)
    close(s["token"], 1 / 2, 1 / 3, 0.4)
    assert s["token"]["per_label"]["PROFESION"]["fp"] == 1
    # Strict (spaCy's Scorer.score_spans): "an Pérez" starts inside the gold token "Juan";
    # aligned to the gold tokens it would be "Juan Pérez", not its text, so it is not scored.
    # "atendió" is a false positive, the gold name a false negative: tp 0, fp 1, fn 1.
    assert (s["ents_strict"]["tp"], s["ents_strict"]["fp"], s["ents_strict"]["fn"]) == (0, 1, 1)
    # "an Pérez" overlaps the gold name: not missed.
    assert s["leak"]["missed"] == 0


def test_leak(nlp):
    text = "Juan Pérez vive en Madrid. Su teléfono es 600123456."
    gold_ents = [("Juan Pérez", "NOMBRE"), ("Madrid", "TERRITORIO"), ("600123456", "TELEFONO")]
    gold = make(nlp, text, gold_ents)
    # "Pérez" found partially, the phone number exactly, Madrid not at all.
    pred = make(nlp, text, [("Pérez", "NOMBRE"), ("600123456", "TELEFONO")])
    s = score_docs([gold], [pred])
    # MEDDOCAN's leak score: gold entities not found exactly (Juan Pérez, Madrid: 2) over
    # 2 sentences (2 full stops): 1.0. Missed entirely (no overlap at all): Madrid only.
    assert s["leak"] == {
        "fn": 2,
        "missed": 1,
        "gold_entities": 3,
        "sentences": 2,
        "leak_score": 1.0,
        "missed_per_label": {"TERRITORIO": 1},
    }
    assert s["leak"]["fn"] == s["ents_strict"]["fn"]
    # The gold doc was not given sentence boundaries by the counting.
    assert not gold.has_annotation("SENT_START")
    # With gold sentence annotation, it is used: mark the whole text as one sentence.
    gold_one = make(nlp, text, gold_ents)
    for i, token in enumerate(gold_one):
        token.is_sent_start = i == 0
    s = score_docs([gold_one], [pred])
    assert (s["leak"]["sentences"], s["leak"]["leak_score"]) == (1, 2.0)


def test_macro_vs_micro(nlp):
    text = "Ana, Eva y Luz viven en Roma."
    gold = make(nlp, text, [("Ana", "NOMBRE"), ("Eva", "NOMBRE"), ("Luz", "NOMBRE"), ("Roma", "TERRITORIO")])
    pred = make(nlp, text, [("Ana", "NOMBRE"), ("Eva", "NOMBRE"), ("Luz", "NOMBRE")])
    s = score_docs([gold], [pred])
    # Micro: tp 3, fp 0, fn 1: p = 1, r = 3/4, f = 2*0.75/1.75 = 6/7.
    close(s["ents_strict"], 1, 0.75, 6 / 7)
    # Macro: NOMBRE 1/1/1, TERRITORIO 0/0/0 -> 0.5/0.5/0.5.
    close(s["ents_strict"]["macro"], 0.5, 0.5, 0.5)
    # Single-token entities: the token measure is the same.
    close(s["token"], 1, 0.75, 6 / 7)
    close(s["token"]["macro"], 0.5, 0.5, 0.5)
    # Spans merged: "Ana, Eva y Luz": "Ana, Eva" merge (comma), "y" keeps Luz apart.
    # Merged gold {Ana-Eva, Luz, Roma}, merged pred {Ana-Eva, Luz}. As MEDDOCAN counts, the
    # hits are the exact ones (Ana, Eva, Luz) and the merged ones (Ana-Eva, Luz): tp 4;
    # Roma, inside no hit, fn 1.
    assert (s["spans_merged"]["tp"], s["spans_merged"]["fp"], s["spans_merged"]["fn"]) == (4, 0, 1)


def test_empty_predictions(nlp):
    gold = make(nlp, TEXT, GOLD)
    s = score_docs([gold], [nlp.make_doc(TEXT)])
    # Nothing predicted: p = 0 (not a ZeroDivisionError), r = 0, f = 0.
    for key in ("ents_strict", "spans_strict", "spans_merged", "token"):
        close(s[key], 0, 0, 0)
    assert (s["ents_strict"]["tp"], s["ents_strict"]["fp"], s["ents_strict"]["fn"]) == (0, 0, 3)
    close(s["ents_strict"]["macro"], 0, 0, 0)
    assert s["leak"]["missed"] == 3
    # Nothing in gold either, and even no documents at all: zeros everywhere.
    empty = score_docs([make(nlp, TEXT)], [nlp.make_doc(TEXT)])
    close(empty["ents_strict"], 0, 0, 0)
    close(empty["ents_strict"]["macro"], 0, 0, 0)
    assert empty["ents_strict"]["per_label"] == {}
    none = score_docs([], [])
    assert none["n_docs"] == 0 and none["leak"]["leak_score"] == 0.0
    to_markdown(none)  # renders without errors


def test_texts_differ(nlp):
    golds = [make(nlp, "Uno."), make(nlp, "Dos.")]
    with pytest.raises(ValueError, match="Document 1"):
        score_docs(golds, [nlp.make_doc("Uno."), nlp.make_doc("Tres.")])
    with pytest.raises(ValueError, match="number"):
        score_docs(golds, [nlp.make_doc("Uno.")])


def test_unannotated_gold_doc_is_skipped(nlp):
    # Like spaCy's scorer: a gold doc without NER annotation is not scored.
    pred = make(nlp, TEXT, GOLD)
    s = score_docs([nlp.make_doc(TEXT)], [pred])
    assert (s["n_docs"], s["n_docs_scored"]) == (1, 0)
    assert s["ents_strict"]["fp"] == 0


def test_missing_gold_annotation_is_neither_right_nor_wrong(nlp):
    # Gold knows Madrid, and has no annotation at all on "Juan Pérez" (ent_iob 0).
    gold = nlp.make_doc(TEXT)
    start = TEXT.index("Juan Pérez")
    madrid = TEXT.index("Madrid")
    gold.set_ents([gold.char_span(madrid, madrid + 6, "TERRITORIO")],
                  missing=[gold.char_span(start, start + 10)], default="outside")
    pred = make(nlp, TEXT, [("Juan Pérez", "NOMBRE"), ("Madrid", "TERRITORIO")])
    s = score_docs([gold], [pred])
    # The prediction over the unannotated tokens is ignored, as spaCy does: 1/1/1.
    assert (s["ents_strict"]["tp"], s["ents_strict"]["fp"], s["ents_strict"]["fn"]) == (1, 0, 0)
    assert (s["token"]["tp"], s["token"]["fp"], s["token"]["fn"]) == (1, 0, 0)
    from spacy.scorer import get_ner_prf
    assert get_ner_prf([Example(pred, gold)])["ents_p"] == pytest.approx(1.0)


# --- Agreement with spaCy, and the CLI ------------------------------------------------

NAMES = ["Juan Pérez", "Ana López", "Luis Gómez", "Eva Ruiz"]
CITIES = ["Madrid", "Sevilla", "Bilbao", "Valencia"]


def tiny_corpus(nlp, n=24):
    docs = []
    for i in range(n):
        name, city = NAMES[i % 4], CITIES[(i // 4) % 4]
        text = f"Paciente {name}, de {20 + i} años, vive en {city}. Acude a consulta."
        docs.append(make(nlp, text, [(name, "NOMBRE"), (f"{20 + i} años", "EDAD"), (city, "TERRITORIO")]))
    return docs


@pytest.fixture(scope="module")
def ner_setup(tmp_path_factory):
    """An untrained (randomly initialised) NER pipeline and a DocBin on disk."""
    fix_random_seed(0)
    nlp = spacy.blank("es")
    nlp.add_pipe("ner")
    docs = tiny_corpus(nlp)
    nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in docs])
    path = tmp_path_factory.mktemp("data") / "dev.spacy"
    DocBin(docs=docs).to_disk(path)
    return nlp, docs, path


def test_strict_equals_spacy_evaluate(ner_setup):
    nlp, _, path = ner_setup
    ours = evaluate(nlp, path, batch_size=8)
    # Examples as spaCy's Corpus reader builds them.
    gold = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    theirs = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in gold])
    strict = ours["ents_strict"]
    assert strict["p"] == pytest.approx(theirs["ents_p"])
    assert strict["r"] == pytest.approx(theirs["ents_r"])
    assert strict["f"] == pytest.approx(theirs["ents_f"])
    for label, prf in theirs["ents_per_type"].items():
        assert strict["per_label"][label]["f"] == pytest.approx(prf["f"])
    assert ours["n_docs"] == 24 and ours["tokens_per_second"] > 0
    assert strict["tp"] + strict["fn"] == 72  # 3 gold entities per doc


def test_strict_equals_spacy_scorer_with_hits(nlp):
    # The random model above gets nothing right, so also check against spaCy's own NER
    # scorer (what nlp.evaluate calls) on hand-made predictions with hits and misses.
    from spacy.scorer import get_ner_prf

    golds = tiny_corpus(nlp, n=8)
    preds = []
    for i, gold in enumerate(golds):
        pred = nlp.make_doc(gold.text)
        ents = []
        for j, ent in enumerate(gold.ents):
            span = pred[ent.start : ent.end]
            if (i + j) % 4 == 1:
                continue  # missed
            if (i + j) % 4 == 2:
                span = pred[ent.start : ent.end + 1]  # boundary error
            ents.append(pred.char_span(span.start_char, span.end_char,
                                       label="PAIS" if (i + j) % 4 == 3 and j == 2 else ent.label_))
        pred.ents = ents
        preds.append(pred)
    ours = score_docs(golds, preds)["ents_strict"]
    theirs = get_ner_prf([Example(p, g) for p, g in zip(preds, golds)])
    assert 0 < ours["tp"] < 24 and ours["fp"] > 0 and ours["fn"] > 0
    assert (ours["p"], ours["r"], ours["f"]) == pytest.approx((theirs["ents_p"], theirs["ents_r"], theirs["ents_f"]))
    for label, prf in theirs["ents_per_type"].items():
        assert ours["per_label"][label]["p"] == pytest.approx(prf["p"])
        assert ours["per_label"][label]["r"] == pytest.approx(prf["r"])


def test_cli_writes_json_and_markdown(ner_setup, tmp_path):
    nlp, _, path = ner_setup
    model = tmp_path / "model"
    nlp.to_disk(model)
    code = tmp_path / "extra.py"
    code.write_text(
        "import spacy\n"
        "@spacy.registry.misc('test_evaluate.marker.v1')\n"
        "def marker():\n    return 1\n"
    )
    out_json, out_md = tmp_path / "m" / "metrics.json", tmp_path / "m" / "metrics.md"
    main(str(model), path, output=out_json, markdown=out_md, code=code, batch_size=4)
    assert "test_evaluate.marker.v1" in spacy.registry.misc  # --code was imported
    scores = json.loads(out_json.read_text())
    for key in ("n_docs", "n_tokens", "ents_strict", "spans_strict", "spans_merged", "token", "leak", "tokens_per_second"):
        assert key in scores
        assert key in KEYS
    for key in ("per_label", "macro"):
        assert key in scores["ents_strict"] and key in scores["token"]
    assert scores["n_docs"] == 24
    md = out_md.read_text()
    assert "| Measure | P | R | F |" in md and "| Label | Support |" in md
    assert "Leak score" in md
    # No document text in the report.
    assert "Juan" not in md and "Madrid" not in md


def test_cli_missing_files_fail(ner_setup, tmp_path):
    nlp, _, path = ner_setup
    with pytest.raises(SystemExit) as err:
        main("whatever", tmp_path / "missing.spacy")
    assert err.value.code == 1
    with pytest.raises(SystemExit):
        main(str(tmp_path / "no-model"), path)
    bad = tmp_path / "bad.spacy"
    bad.write_bytes(b"not a docbin")
    model = tmp_path / "model"
    nlp.to_disk(model)
    with pytest.raises(SystemExit):
        main(str(model), bad)


def test_brat_in_the_official_scripts_layout(nlp, tmp_path):
    gold = make(nlp, "Vive en Calle Mayor 5 de\nMadrid.", [("Calle Mayor 5 de\nMadrid", "CALLE")])
    pred = make(nlp, gold.text, [("Calle Mayor", "CALLE"), ("Madrid", "TERRITORIO")])
    gold.user_data["id"] = "S0001-1"
    assert write_meddocan_brat([gold], [pred], tmp_path) == 1
    assert (tmp_path / "ref/brat/S0001-1.txt").read_text() == gold.text
    # Offsets as in the text; a line break inside a surface becomes a space.
    assert (tmp_path / "ref/brat/S0001-1.ann").read_text() == "T1\tCALLE 8 31\tCalle Mayor 5 de Madrid\n"
    for subtask in ("subtask1", "subtask2"):
        assert (tmp_path / "res/brat" / subtask / "S0001-1.ann").read_text() == (
            "T1\tCALLE 8 19\tCalle Mayor\nT2\tTERRITORIO 25 31\tMadrid\n")
        assert (tmp_path / "res/brat" / subtask / "S0001-1.txt").read_text() == gold.text
    # Without ids (or with repeated ones) the files are numbered.
    other = tmp_path / "other"
    write_meddocan_brat([make(nlp, "Uno."), make(nlp, "Dos.")], [make(nlp, "Uno."), make(nlp, "Dos.")], other)
    assert sorted(path.name for path in (other / "ref/brat").iterdir()) == [
        "doc-00001.ann", "doc-00001.txt", "doc-00002.ann", "doc-00002.txt"]
    assert (other / "ref/brat/doc-00002.ann").read_text() == ""


def test_cli_writes_brat(ner_setup, tmp_path, capsys):
    nlp, docs, path = ner_setup
    model = tmp_path / "model"
    nlp.to_disk(model)
    main(str(model), path, brat=tmp_path / "brat", batch_size=4)
    assert len(list((tmp_path / "brat/res/brat/subtask2").glob("*.ann"))) == len(docs)
    assert "Saved gold and predictions of 24 documents as BRAT" in capsys.readouterr().out
