"""Label maps without Python: kinds guessed from label names, maps from files or inline JSON,
and the table of what each of a pipeline's labels turns into."""
import json
import re

import pytest
import spacy
from wasabi import Printer

import clinical_deid.rules  # noqa: F401  (registers deid_rules)
import clinical_deid.transform  # noqa: F401  (registers deid_transform)
from clinical_deid.label_map import guess_kind, pipeline_labels, read_label_map, report_label_kinds
from clinical_deid.labels import KINDS, PRESETS

TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}
# A label set of its own (the issue's: i2b2-like), and what each label's name says.
GUESSES = {
    "NAME_PATIENT": "name", "NAME_DOCTOR": "name", "LOCATION_CITY": "city", "LOCATION_STREET": "street",
    "LOCATION_ZIP": "territory", "LOCATION_STATE": "territory", "LOCATION_COUNTRY": "country",
    "LOCATION_HOSPITAL": "hospital", "LOCATION_ORGANIZATION": "organisation", "CONTACT_PHONE": "phone",
    "CONTACT_FAX": "phone", "CONTACT_EMAIL": "email", "CONTACT_URL": "url", "CONTACT_IPADDR": "ip",
    "ID": "id_generic", "ID_SSN": "id_generic", "PATIENT_ID": "id_generic", "DATE": "date", "AGE": "age",
    "PROFESSION": "profession", "Date_Full": "date", "First_Name": "first_name", "FAMILY_NAME": "last_name",
    "E-MAIL": "email", "PhoneNumber": "phone", "Health_Care_Unit": "hospital", "HOSPITAL_NAME": "hospital",
    "Fødselsnummer": "id_generic", "NAVN_PASIENT": "name", "TELEFONNUMMER": "phone", "POSTNUMMER": "territory",
    "LOCATION_OTHER": None, "MISC": None, "SEX": None, "XYZ": None, "DOCUMENTO": None,
}
NOTE = "John Smith of Boston 02115, SSN 123-45-6789, at Fenway Park."
ENTS = [("NAME_PATIENT", "John Smith"), ("LOCATION_CITY", "Boston"), ("LOCATION_ZIP", "02115"),
        ("ID_SSN", "123-45-6789"), ("LOCATION_OTHER", "Fenway Park")]


@pytest.mark.parametrize("label", sorted(GUESSES))
def test_kinds_are_guessed_from_label_names(label):
    assert guess_kind(label) == GUESSES[label]


def ruler_pipeline(**transform_config):
    nlp = spacy.blank("en", config=TOKENIZER)
    nlp.add_pipe("entity_ruler").add_patterns([{"label": label, "pattern": text} for label, text in ENTS])
    nlp.add_pipe("deid_transform", config={"rules_key": "none", **transform_config})
    return nlp


def test_pseudonymize_draws_surrogates_for_an_unknown_label_set():
    """The trap of issue 12: every label outside the presets became "[LABEL]" under pseudonymize."""
    doc = ruler_pipeline()(NOTE)
    by_label = {s["label"]: s for s in doc._.deid_spans}
    for label in ("NAME_PATIENT", "LOCATION_CITY", "LOCATION_ZIP", "ID_SSN"):
        assert by_label[label]["kind"] == GUESSES[label]
        assert not by_label[label]["replacement"].startswith("["), label
    assert by_label["LOCATION_OTHER"]["replacement"] == "[LOCATION_OTHER]"  # no guess: default_kind
    for _, text in ENTS[:-1]:
        assert text not in doc._.deidentified
    off = ruler_pipeline(guess_kinds=False)(NOTE)._.deidentified
    assert off == "[NAME_PATIENT] of [LOCATION_CITY] [LOCATION_ZIP], SSN [ID_SSN], at [LOCATION_OTHER]."


def test_the_map_comes_before_the_preset_and_the_guess():
    nlp = ruler_pipeline(label_map={"LOCATION_OTHER": "city", "LOCATION_ZIP": "keep"})
    transform = nlp.get_pipe("deid_transform")
    transform.set_label_map({"NAME_PATIENT": "mask", "EMAIL": "redact"})
    assert [transform.kind_source(label) for label in ("LOCATION_OTHER", "NAME_PATIENT", "EMAIL", "FECHAS",
                                                        "ID_SSN", "XYZ")] == [
        ("city", "map"), ("mask", "map"), ("redact", "map"), ("date", "preset"), ("id_generic", "guessed"),
        ("redact", "default")]
    out = nlp(NOTE)._.deidentified
    assert out.startswith("**** ***** of ") and " 02115, " in out and "Fenway Park" not in out
    assert ruler_pipeline(default_kind="mask").get_pipe("deid_transform").kind("XYZ") == "mask"


def test_a_bad_kind_names_the_label_and_the_valid_kinds(tmp_path):
    with pytest.raises(ValueError, match=r"\(label 'NAME_PATIENT' has kind 'nickname'\); valid kinds: name, first_name"):
        ruler_pipeline(label_map={"NAME_PATIENT": "nickname"})
    with pytest.raises(ValueError, match=r"inline JSON\): unknown surrogate kind \(label 'A' has kind 'x'"):
        read_label_map('{"A": "x", "B": "name"}')
    transform = ruler_pipeline().get_pipe("deid_transform")
    with pytest.raises(ValueError, match="label 'B' has kind 'Name'"):
        transform.set_label_map({"B": "Name"})
    assert transform.kind("B") == "redact"  # nothing of a refused map is kept


def test_label_maps_from_files_and_inline_json(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("\ufeff" + json.dumps({"ID_SSN": "id_generic", "X": "keep"}), encoding="utf-8")
    assert read_label_map(str(path)) == {"ID_SSN": "id_generic", "X": "keep"}
    assert read_label_map(' {"X": "keep"}') == {"X": "keep"}
    assert read_label_map("") == read_label_map(None) == read_label_map("  ") == {}
    assert read_label_map({"X": "mask"}) == {"X": "mask"}
    assert read_label_map("ID_SSN=id_generic, LOCATION_OTHER = city,") == {"ID_SSN": "id_generic",
                                                                            "LOCATION_OTHER": "city"}
    (tmp_path / "bad.json").write_text('{"X": "keep",\n "Y": }')
    cases = [(tmp_path / "missing.json", "missing.json: no such file"),
             (tmp_path / "bad.json", r"bad.json: not JSON \(line 2, column 7"),
             ('["X"]', "expected a JSON object {label: kind}, not a list"),
             ('{"X": 3}', "label 'X' has kind 3"),
             ("X=keep,Y", "'Y' is not LABEL=kind"),
             ("X=town", r"--label-map: unknown surrogate kind \(label 'X' has kind 'town'\)")]
    for value, message in cases:
        with pytest.raises(ValueError, match=message):
            read_label_map(str(value))


def test_the_stockholm_preset_knows_both_names_of_full_dates():
    assert PRESETS["stockholm_epr"]["Date_Full"] == PRESETS["stockholm_epr"]["Full_Date"] == "date"
    assert PRESETS["auto"]["Date_Full"] == "date"


def plain(printed):
    """Printed text without colours, its whitespace (wasabi's wrapping) made single spaces."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", printed).split())


def test_the_table_of_kinds_and_the_loud_list(capsys):
    nlp = ruler_pipeline(label_map={"NAME_PATIENT": "name", "TYPO_LABEL": "city"})
    nlp.add_pipe("deid_rules", before="deid_transform", config={"rules": ["EMAIL", "DATE"]})
    assert pipeline_labels(nlp) == sorted(["DATE", "EMAIL", *(label for label, _ in ENTS)])
    rows = report_label_kinds(nlp, Printer())
    assert rows == [("DATE", "date", "preset"), ("EMAIL", "email", "preset"), ("ID_SSN", "id_generic", "guessed"),
                    ("LOCATION_CITY", "city", "guessed"), ("LOCATION_OTHER", "redact", "default"),
                    ("LOCATION_ZIP", "territory", "guessed"), ("NAME_PATIENT", "name", "map")]
    out = plain(capsys.readouterr().out)
    assert "What each label turns into (pseudonymize)" in out
    assert "Label Kind Source" in out and "LOCATION_ZIP territory guessed" in out
    assert ("⚠ 1 label(s) have no surrogate and are REDACTED under pseudonymize: LOCATION_OTHER (default)"
            in out)
    assert "--label-map names label(s) this pipeline does not predict: TYPO_LABEL" in out
    nlp.get_pipe("deid_transform").mode = "redact"
    report_label_kinds(nlp, Printer())
    assert "REDACTED" not in capsys.readouterr().out  # redact mode: nothing falls back
    assert set(KINDS) >= {kind for _, kind, _ in rows}
