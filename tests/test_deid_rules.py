"""deid_rules: regex rules for structured PHI (check digits validated), merged with the model's
entities by a policy."""
import pytest
import spacy

from clinical_deid.rules import find_structured_phi
from tests.deid_pipelines import TOKENIZER


def test_rules_find_structured_phi():
    text = ("Mail ana@correo.es, http://www.h.es/x. IP 10.0.0.1. DNI 12345678Z (no: 12345678A), NIE X1234567L. "
            "Tel 612 345 678, Fax: 93 456 78 90. Alta 01.03.2019. PN 19121212-1212. Telefon 070-123 45 67.")
    found = {text[s:e]: rule for s, e, rule in find_structured_phi(text)}
    assert found == {
        "ana@correo.es": "EMAIL", "http://www.h.es/x": "URL", "10.0.0.1": "IP", "12345678Z": "DNI",
        "X1234567L": "NIE", "612 345 678": "PHONE", "93 456 78 90": "FAX", "01.03.2019": "DATE",
        "19121212-1212": "PERSONNUMMER", "070-123 45 67": "PHONE",
    }
    assert "12345678A" in {text[s:e] for s, e, _ in find_structured_phi(text, validate=False)}
    # Numbers of IDs are no phone numbers (MEDDOCAN): by their grouping or by their label.
    assert find_structured_phi("NASS: 89-89532-56. NºCol: 02-08-17593. Episodio: 632632225.") == []
    postcodes = find_structured_phi("C.P. 28034 Getafe; 123 45 Stockholm", rules=["POSTCODE"])
    assert [rule for *_, rule in postcodes] == ["POSTCODE", "POSTCODE"]


@pytest.mark.parametrize("policy,expected", [
    # The ruler (the "model") says "Tel 612" is a phone; the rule finds "612 345 678".
    ("ner", [("Tel 612", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
    ("longest", [("612 345 678", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
    ("rules", [("612 345 678", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
])
def test_rules_merge_with_ner(policy, expected):
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("entity_ruler").add_patterns([
        {"label": "NUMERO_TELEFONO", "pattern": [{"ORTH": "Tel"}, {"ORTH": "612"}]},
        {"label": "NOMBRE_SUJETO_ASISTENCIA", "pattern": "Ana"},
    ])
    nlp.add_pipe("deid_rules", config={"policy": policy})
    doc = nlp("Ana: Tel 612 345 678, DNI 12345678Z.")
    assert [(e.text, e.label_) for e in doc.ents] == [("Ana", "NOMBRE_SUJETO_ASISTENCIA")] + expected
    assert [s.text for s in doc.spans["deid_rules"]] == ["612 345 678", "12345678Z"]
