"""The production command's --label-map: a JSON file or inline JSON, the table of kinds at the
start of a run, the labels without a surrogate listed loudly, and bad maps as one-line errors."""
import json
import re

import pytest
import spacy

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from deidentify_support import KEY, cli, run

ENTS = [("NAME_PATIENT", "John Smith"), ("LOCATION_CITY", "Boston"), ("LOCATION_ZIP", "02115"),
        ("CONTACT_PHONE", "617-555-0134"), ("LOCATION_OTHER", "Fenway Park"), ("XYZ", "zork")]
NOTE = "John Smith of Boston 02115, phone 617-555-0134, seen at Fenway Park, zork."


@pytest.fixture(scope="module")
def own_labels(tmp_path_factory):
    """A pipeline of a label set of its own (none of the presets'), and a note as JSONL."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": label, "pattern": text} for label, text in ENTS])
    folder = tmp_path_factory.mktemp("own_labels")
    nlp.to_disk(folder / "model")
    (folder / "in.jsonl").write_text(json.dumps({"id": "a", "text": NOTE}) + "\n", encoding="utf-8")
    return folder


def deidentify(folder, name, *options):
    """The command line on the note; (exit code, printed output, de-identified text or None)."""
    out = folder / f"{name}.jsonl"
    code, printed = cli(folder / "model", folder / "in.jsonl", out, "--insecure-demo-key", "--no-resume", *options)
    text = json.loads(out.read_text(encoding="utf-8"))["text"] if code == 0 else None
    return code, re.sub(r"\x1b\[[0-9;]*m", "", printed), text


def test_kinds_are_guessed_and_tabled_and_the_rest_listed_loudly(own_labels):
    code, printed, text = deidentify(own_labels, "guessed")
    assert code == 0, printed
    assert "What each label turns into (pseudonymize)" in printed
    for row in ("NAME_PATIENT name guessed", "LOCATION_ZIP territory guessed", "CONTACT_PHONE phone guessed",
                "LOCATION_OTHER redact default", "XYZ redact default"):
        assert row in printed
    assert ("2 label(s) have no surrogate and are REDACTED under pseudonymize: LOCATION_OTHER (default), "
            "XYZ (default)") in printed
    for _, original in ENTS:
        assert original not in text
    assert "[NAME_PATIENT]" not in text and "[LOCATION_OTHER]" in text and "[XYZ]" in text


def test_a_label_map_from_a_file_or_inline(own_labels):
    path = own_labels / "labels.json"
    path.write_text(json.dumps({"LOCATION_OTHER": "city", "XYZ": "keep"}), encoding="utf-8")
    for name, value in (("file", str(path)), ("inline", '{"LOCATION_OTHER": "city", "XYZ": "keep"}')):
        code, printed, text = deidentify(own_labels, name, "--label-map", value)
        assert code == 0, printed
        assert "LOCATION_OTHER city map" in printed and "XYZ keep map" in printed and "REDACTED" not in printed
        assert "Fenway Park" not in text and "[LOCATION_OTHER]" not in text and text.endswith(", zork.")


def test_the_map_reaches_the_run_through_deidentify_main(own_labels):
    run(own_labels / "model", own_labels / "in.jsonl", own_labels / "main.jsonl", key=KEY, resume=False,
        label_map={"NAME_PATIENT": "mask"}, spans_output=own_labels / "main.spans.jsonl")
    assert json.loads((own_labels / "main.jsonl").read_text())["text"].startswith("**** ***** of ")


def test_bad_label_maps_are_one_line_errors(own_labels):
    (own_labels / "bad.json").write_text('{"XYZ": "keep",}', encoding="utf-8")
    cases = [('{"XYZ": "nickname"}', "label 'XYZ' has kind 'nickname'); valid kinds: name, first_name,"),
             (own_labels / "missing.json", "missing.json: no such file"),
             (own_labels / "bad.json", "bad.json: not JSON (line 1, column 16"),
             ('{"XYZ": ', "(inline JSON): not JSON")]
    for value, message in cases:
        code, printed, _ = deidentify(own_labels, "bad", "--label-map", value)
        assert code == 1 and message in printed and "Traceback" not in printed, printed
        assert "What each label" not in printed  # refused before the pipeline is loaded


def test_a_map_label_the_pipeline_never_predicts_is_named(own_labels):
    code, printed, _ = deidentify(own_labels, "typo", "--label-map", '{"NAME_PATIENTS": "name"}')
    assert code == 0 and "--label-map names label(s) this pipeline does not predict: NAME_PATIENTS" in printed
