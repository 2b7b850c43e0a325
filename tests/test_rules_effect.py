"""scripts/rules_effect.py on hand-made notes: an entity_ruler plays the NER model.

The ruler finds the patient's name but not the e-mail address, which the annotators marked;
the annotators did not mark the batch number that looks like a phone number; there is no URL.
So EMAIL must help, PHONE hurt and URL do nothing.
"""
import json

import pytest
import spacy
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

import clinical_deid.tokenizer  # noqa: F401  (the clinical tokenizer)
from deid_synthesis.rules_effect import configurations, predict, rules_effect, to_markdown, verdict
from scripts.rules_effect import main

TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}
NOTES = [
    ("Paciente: Ana García. Correo: ana.garcia@example.com.",
     [("Ana García", "NOMBRE_SUJETO_ASISTENCIA"), ("ana.garcia@example.com", "CORREO_ELECTRONICO")]),
    ("Lote del fármaco 612 345 678. Revisa Luis Pérez.", [("Luis Pérez", "NOMBRE_SUJETO_ASISTENCIA")]),
]
RULES = ["EMAIL", "PHONE", "URL"]


@pytest.fixture(scope="module")
def ner():
    nlp = spacy.blank("es", config=TOKENIZER)
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns([{"label": "NOMBRE_SUJETO_ASISTENCIA", "pattern": name} for name in ("Ana García", "Luis Pérez")])
    return nlp


@pytest.fixture(scope="module")
def gold(ner):
    docs = []
    for text, ents in NOTES:
        doc = ner.make_doc(text)
        doc.ents = [doc.char_span(text.index(sub), text.index(sub) + len(sub), label=label) for sub, label in ents]
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def result(ner, gold):
    return rules_effect(gold, predict(ner, gold), "es", RULES)


def test_configurations():
    configs = configurations(["EMAIL", "URL"])
    assert configs == {"model": [], "all": ["EMAIL", "URL"], "+EMAIL": ["EMAIL"], "+URL": ["URL"],
                       "all-EMAIL": ["URL"], "all-URL": ["EMAIL"]}


def test_verdict_overall_decides_before_label():
    assert verdict(0.01, -0.5) == "helps"
    assert verdict(-0.01, 0.5) == "hurts"
    assert verdict(0.0, 0.2) == "helps"
    assert verdict(0.0, 0.0) == "no effect"


def test_email_helps_phone_hurts_url_does_nothing(result):
    configs, effects = result["configurations"], result["effects"]
    assert configs["model"]["strict"] == {**configs["model"]["strict"], "tp": 2, "fp": 0, "fn": 1}
    assert configs["+EMAIL"]["strict"]["tp"] == 3 and configs["+EMAIL"]["strict"]["fp"] == 0
    assert configs["+EMAIL"]["per_label"]["CORREO_ELECTRONICO"]["f"] == 1.0
    assert configs["+PHONE"]["strict"]["fp"] == 1 and configs["+PHONE"]["rule_matches"] == 1
    assert configs["all"]["strict"] == {**configs["all"]["strict"], "tp": 3, "fp": 1, "fn": 0}
    assert effects["EMAIL"]["label"] == "CORREO_ELECTRONICO"
    assert effects["EMAIL"]["leave_one_out"]["overall_f_delta"] > 0
    assert effects["PHONE"]["leave_one_out"]["overall_f_delta"] < 0
    assert effects["URL"]["leave_one_out"] == {"overall_f_delta": 0.0, "label_f_delta": 0.0}
    assert (result["recommended"], result["hurt"], result["no_effect"]) == (["EMAIL"], ["PHONE"], ["URL"])


def test_predicted_docs_stay_untouched(ner, gold):
    pred = predict(ner, gold)
    rules_effect(gold, pred, "es", RULES)
    assert [len(doc.ents) for doc in pred] == [1, 1]
    assert [len(doc.ents) for doc in gold] == [2, 1]


def test_markdown_has_counts_and_labels_only(result):
    md = to_markdown(result)
    assert "Recommended (help): EMAIL." in md and "Hurt: PHONE." in md and "No effect: URL." in md
    assert "| all-PHONE |" in md and "CORREO_ELECTRONICO" in md
    for text, ents in NOTES:
        assert all(sub not in md for sub, _ in ents)


def test_cli_writes_a_rules_list_deid_rules_accepts(ner, gold, tmp_path):
    ner.to_disk(tmp_path / "model")
    DocBin(docs=gold).to_disk(tmp_path / "test.spacy")
    out, md, rules = tmp_path / "m" / "effect.json", tmp_path / "m" / "effect.md", tmp_path / "m" / "rules.json"
    app = CliRunner()
    cli = typer.Typer()
    cli.command()(main)
    run = app.invoke(cli, [str(tmp_path / "model"), str(tmp_path / "test.spacy"), "--rules", "email,phone,url",
                           "--output", str(out), "--markdown", str(md), "--rules-output", str(rules)])
    assert run.exit_code == 0, run.output
    assert json.loads(rules.read_text()) == ["EMAIL"]
    assert json.loads(out.read_text())["hurt"] == ["PHONE"]
    nlp = spacy.load(tmp_path / "model")
    nlp.add_pipe("deid_rules", config={"rules": json.loads(rules.read_text())})
    assert [e.label_ for e in nlp(NOTES[0][0]).ents] == ["NOMBRE_SUJETO_ASISTENCIA", "CORREO_ELECTRONICO"]
    bad = app.invoke(cli, [str(tmp_path / "model"), str(tmp_path / "test.spacy"), "--rules", "EMAIL,SSN"])
    assert bad.exit_code == 1
