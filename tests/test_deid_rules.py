"""deid_rules: regex rules for structured PHI (check digits validated), merged with the model's
entities by a policy."""
import pytest
import spacy

from clinical_deid.rules import PRESETS, RULES, find_structured_phi
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


GERMAN_LABELS = ["NAME_PATIENT", "DATE", "DATE_BIRTH", "LOCATION_ZIP", "CONTACT_PHONE", "ID_PATIENT", "ID_INSURANCE"]
NOTE_DE = "Tel. 030 1234567, Fax: 030 7654321, am 01.03.2019, an a@b.de"


def german_pipeline(labels=GERMAN_LABELS, **config):
    """blank de + an (untrained) NER with a label set no preset covers + deid_rules."""
    nlp = spacy.blank("de")
    ner = nlp.add_pipe("ner")
    for label in labels:
        ner.add_label(label)
    nlp.add_pipe("deid_rules", config={"rules": ["EMAIL", "PHONE", "FAX", "DATE", "NATIONAL_ID"], **config})
    return nlp


def rule_spans(nlp):
    doc = nlp.get_pipe("deid_rules")(nlp.make_doc(NOTE_DE))  # (the untrained NER's guesses left out)
    return [(span.text, span.label_) for span in doc.spans["deid_rules"]]


def test_rule_labels_follow_the_ner_labels():
    from wasabi import Printer

    from clinical_deid.rule_labels import report_rule_labels
    nlp = german_pipeline()
    # FAX has no label of its own: it takes the only phone label; EMAIL has none of its kind.
    assert rule_spans(nlp) == [("030 1234567", "CONTACT_PHONE"), ("030 7654321", "CONTACT_PHONE"),
                               ("01.03.2019", "DATE"), ("a@b.de", "EMAIL")]
    rows = report_rule_labels(nlp, Printer(no_print=True))
    # Two ID labels: NATIONAL_ID keeps its name, reported as a tie.
    assert ("NATIONAL_ID", "NATIONAL_ID", "tie") in rows and ("PHONE", "CONTACT_PHONE", "ner") in rows
    assert nlp.get_pipe("deid_rules").label_sources()["NATIONAL_ID"][2] == ["ID_INSURANCE", "ID_PATIENT"]
    # One phone label of each: the rule's own word decides; one ID label: it is taken.
    nlp = german_pipeline(GERMAN_LABELS[:-1] + ["CONTACT_FAX", "CONTACT_EMAIL"])
    labels = nlp.get_pipe("deid_rules").labels
    assert (labels["PHONE"], labels["FAX"], labels["EMAIL"], labels["NATIONAL_ID"]) == (
        "CONTACT_PHONE", "CONTACT_FAX", "CONTACT_EMAIL", "ID_PATIENT")
    # An explicit label_map entry wins.
    nlp = german_pipeline(label_map={"PHONE": "TELEFON"})
    assert rule_spans(nlp)[:2] == [("030 1234567", "TELEFON"), ("030 7654321", "CONTACT_PHONE")]


def test_rule_labels_saved_with_the_pipeline(tmp_path):
    nlp = german_pipeline()
    nlp.initialize()
    expected = nlp.get_pipe("deid_rules").label_sources()
    nlp.to_disk(tmp_path)
    assert (tmp_path / "deid_rules" / "rule_labels.json").is_file()
    loaded = spacy.load(tmp_path)
    assert loaded.get_pipe("deid_rules").label_sources() == expected
    assert rule_spans(loaded)[0] == ("030 1234567", "CONTACT_PHONE")
    # What was saved is what the pipeline keeps, whatever its NER learns later.
    loaded.get_pipe("ner").add_label("TELEFONNUMMER")
    assert loaded.get_pipe("deid_rules").labels["PHONE"] == "CONTACT_PHONE"


@pytest.mark.parametrize("lang,ner_labels,expected", [
    ("es", ["NUMERO_TELEFONO", "FECHAS", "ID_SUJETO_ASISTENCIA", "CORREO_ELECTRONICO", "TERRITORIO"],
     PRESETS["meddocan"]),
    ("sv", ["First_Name", "Last_Name", "Phone_Number", "Age", "Full_Date", "Date_Part", "Health_Care_Unit", "Location"],
     {**{rule: rule for rule in RULES}, **PRESETS["stockholm_epr"]}),
    ("sv", ["PER", "LOC", "ORG", "MISC"], {**{rule: rule for rule in RULES}, **PRESETS["swedish_ner"]})])
def test_rule_labels_of_the_presets_unchanged(lang, ner_labels, expected):
    nlp = spacy.blank(lang)
    ner = nlp.add_pipe("ner")
    for label in ner_labels:
        ner.add_label(label)
    preset = "swedish_ner" if "PER" in ner_labels else "auto"
    assert nlp.add_pipe("deid_rules", config={"preset": preset}).labels == expected
