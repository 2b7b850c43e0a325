"""The registered scorer `deid.ner_scorer.v1`: found by spaCy through the entry point, and
`nlp.evaluate` (what spacy train and spacy evaluate call) reports the project's measures
with the same figures as deid_synthesis.evaluate. MEDDOCAN's merged-span measure and leak
score as its official script defines them, against figures computed by hand."""
import pytest
import spacy
from spacy.training import Example
from spacy.util import fix_random_seed

from clinical_deid.scoring import count_full_stops, merged_span_counts, score_deid_ner, score_docs


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


# --- MEDDOCAN's official definitions, against figures computed by hand ------------------


def make(nlp, text, ents):
    """A doc of `text` with entities given as (substring, label); substrings are unique."""
    doc = nlp.make_doc(text)
    spans = [doc.char_span(text.index(sub), text.index(sub) + len(sub), label=label) for sub, label in ents]
    assert all(span is not None for span in spans), "not token-aligned"
    doc.ents = spans
    return doc


HAND_TEXT = "Juan Pérez vive en Calle Mayor 5, Madrid. Lo atiende el Dr. Luis Gil en Toledo."
HAND_GOLD = [("Juan", "NOMBRE"), ("Pérez", "APELLIDOS"), ("Calle Mayor 5", "CALLE"), ("Madrid", "TERRITORIO"),
             ("Luis Gil", "NOMBRE_SANITARIO"), ("Toledo", "TERRITORIO")]
HAND_PRED = [("Juan", "NOMBRE"), ("Pérez", "APELLIDOS"), ("Calle Mayor", "CALLE"), ("5", "CALLE"),
             ("Madrid", "TERRITORIO"), ("Luis", "NOMBRE_SANITARIO"), ("Toledo", "PAIS")]
SECOND_TEXT = "Alta el 3 de marzo. Control en 2 semanas"


def test_merged_and_leak_as_meddocan_counts_them_by_hand():
    nlp = spacy.blank("es")
    gold = [make(nlp, HAND_TEXT, HAND_GOLD), make(nlp, SECOND_TEXT, [("3 de marzo", "FECHAS")])]
    pred = [make(nlp, HAND_TEXT, HAND_PRED), make(nlp, SECOND_TEXT, [])]
    s = score_docs(gold, pred)
    # Strict spans (label ignored). Doc 1: gold {Juan, Pérez, Calle Mayor 5, Madrid, Luis Gil,
    # Toledo}, pred {Juan, Pérez, Calle Mayor, 5, Madrid, Luis, Toledo}: tp 4, fp 3, fn 2.
    # Doc 2: fn 1. p = 4/7, r = 4/7, f = 4/7.
    assert (s["spans_strict"]["tp"], s["spans_strict"]["fp"], s["spans_strict"]["fn"]) == (4, 3, 3)
    # Merged, doc 1: gold merges to {Juan Pérez, "Calle Mayor 5, Madrid", Luis Gil, Toledo},
    # pred to {Juan Pérez, "Calle Mayor 5, Madrid", Luis, Toledo}. Hits: the exact ones
    # (Juan, Pérez, Madrid, Toledo) and the merged ones (Juan Pérez, "Calle Mayor 5, Madrid",
    # Toledo): 6. fp: Calle Mayor and 5 lie inside a hit, Luis does not: 1. fn: Calle Mayor 5
    # lies inside a hit, Luis Gil does not: 1. Doc 2: fn 1 ("3 de marzo").
    # tp 6, fp 1, fn 2: p = 6/7, r = 6/8, f = 2 * (6/7) * (3/4) / (6/7 + 3/4) = 0.8.
    merged = s["spans_merged"]
    assert (merged["tp"], merged["fp"], merged["fn"]) == (6, 1, 2)
    assert (merged["p"], merged["r"], merged["f"]) == pytest.approx((6 / 7, 3 / 4, 0.8))
    assert merged["f"] > s["spans_strict"]["f"]  # as MEDDOCAN's figures are, unlike a partition
    # Leak: gold entities not found exactly with their label: Calle Mayor 5, Luis Gil, Toledo
    # (found as PAIS) and 3 de marzo = 4. Sentences: full stops after "Madrid", "Toledo" and
    # "marzo" (not "Dr.", an abbreviation; the last sentence has none): 3. 4 / 3.
    assert s["ents_strict"]["fn"] == 4
    assert {k: s["leak"][k] for k in ("fn", "sentences", "missed")} == {"fn": 4, "sentences": 3, "missed": 1}
    assert s["leak"]["leak_score"] == pytest.approx(4 / 3)


def test_merged_span_counts_rule():
    text = "Ana, Eva y Luz"
    ana, eva, luz, ana_eva = (0, 3), (5, 8), (11, 14), (0, 8)
    # Found as annotated: 3 exact hits plus the merged Ana-Eva.
    assert merged_span_counts(text, {ana, eva, luz}, {ana, eva, luz}) == (4, 0, 0)
    # Annotated apart, predicted as one span: the merged spans agree, nothing is wrong.
    assert merged_span_counts(text, {ana, eva}, {ana_eva}) == (1, 0, 0)
    # Predicted apart where gold has one span: the same.
    assert merged_span_counts(text, {ana_eva}, {ana, eva}) == (1, 0, 0)
    # "y" is alphanumeric: Luz never merges; a wrong Luz is fp and fn.
    assert merged_span_counts(text, {luz}, {(11, 13)}) == (0, 1, 1)
    assert merged_span_counts(text, set(), set()) == (0, 0, 0)


@pytest.mark.parametrize("text, expected", [
    ("Sexo: H. Edad: 59.", 1),  # an initial is no full stop
    ("Se realizó una T.A.C. toraco-abdominal.", 1),  # nor are the periods of an acronym
    ("Cisplatino 75 mg./m2 cada 2.5 días. Correo: ana.gil@correo.es", 2),  # "mg./" is; 2.5 and the e-mail are not
    ("Remitido por el Dr. Gil, Avda. de la Paz 3.", 1),  # titles and street types are abbreviations
    ("Espera... y vuelve.", 1),  # an ellipsis is no full stop
    ("malignidad., Se practicó", 1),  # a period before a comma is
    ("Sin puntos", 1),  # a text without a full stop is one sentence
    ("", 0),
    ("  \n", 0),
])
def test_count_full_stops(text, expected):
    assert count_full_stops(text) == expected
