"""The registered scorer `deid.ner_scorer.v1`: found by spaCy through the entry point, and
`nlp.evaluate` (what spacy train and spacy evaluate call) reports the project's measures
with the same figures as deid_synthesis.evaluate."""
import pytest
import spacy
from spacy.training import Example
from spacy.util import fix_random_seed

from clinical_deid.scoring import score_deid_ner, score_docs


def corpus(nlp):
    docs = []
    for i, (name, city) in enumerate([("Juan Pérez", "Madrid"), ("Ana López", "Sevilla")] * 4):
        text = f"Paciente {name}, de {30 + i} años, vive en {city}. Acude a consulta."
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(text.index(sub), text.index(sub) + len(sub), label=label)
                    for sub, label in ((name, "NOMBRE"), (f"{30 + i} años", "EDAD"), (city, "TERRITORIO"))]
        docs.append(doc)
    return docs


def test_registered_through_the_entry_point():
    assert spacy.registry.scorers.get("deid.ner_scorer.v1")() is score_deid_ner


def test_nlp_evaluate_reports_the_project_measures():
    fix_random_seed(0)
    nlp = spacy.blank("es")
    nlp.add_pipe("ner", config={"scorer": {"@scorers": "deid.ner_scorer.v1"}})
    gold = corpus(nlp)
    nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in gold])
    theirs = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in gold])
    ours = score_docs(gold, list(nlp.pipe(d.text for d in gold)))
    for key in "prf":
        assert theirs[f"ents_{key}"] == pytest.approx(ours["ents_strict"][key])
        assert theirs[f"token_{key}"] == pytest.approx(ours["token"][key])
    assert theirs["spans_merged_f"] == pytest.approx(ours["spans_merged"]["f"])
    assert theirs["leak_score"] == pytest.approx(ours["leak"]["leak_score"])
    assert set(theirs["ents_per_type"]) == set(ours["ents_strict"]["per_label"])


def test_matches_spacy_ner_scorer_with_hits():
    from spacy.scorer import get_ner_prf

    nlp = spacy.blank("es")
    gold = corpus(nlp)
    preds = []
    for i, doc in enumerate(gold):
        pred = nlp.make_doc(doc.text)
        pred.ents = [pred.char_span(e.start_char, e.end_char, label="PAIS" if (i + j) % 3 == 0 else e.label_)
                     for j, e in enumerate(doc.ents) if (i + j) % 4]
        preds.append(pred)
    examples = [Example(p, g) for p, g in zip(preds, gold)]
    ours, theirs = score_deid_ner(examples), get_ner_prf(examples)
    assert (ours["ents_p"], ours["ents_r"], ours["ents_f"]) == (theirs["ents_p"], theirs["ents_r"], theirs["ents_f"])
    assert ours["ents_per_type"] == theirs["ents_per_type"]
