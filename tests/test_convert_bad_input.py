"""Issue 12's probe of the converters with bad input: one case a finding, each checking the
message (it names the file and line, never the text) or the output.

The table of cases and messages in the README is this file's cases."""
import json

import pytest
from typer.testing import CliRunner
import typer

from deid_synthesis.corpus import convert as convert_module
from deid_synthesis.corpus.convert import make_nlp, print_report
from deid_synthesis.corpus.prepare import prepare
from deid_synthesis.corpus.records import CorpusError
from scripts.prepare_corpus import main as prepare_main
from convert_support import JSONL_GOOD, assert_names, ents, jsonl, one_brat, run, conll

SECRET = "Juan Pérez"  # the text of the good record: no message may quote it


def raises(tmp_path, path, fmt, line=None, **kwargs):
    with pytest.raises(CorpusError) as err:
        run(tmp_path, path, fmt, **kwargs)
    assert_names(err, path, line)
    assert SECRET not in str(err.value)
    return str(err.value)


def write_jsonl(tmp_path, records, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in records) + "\n", encoding="utf-8")
    return path


# JSONL --------------------------------------------------------------------------------------


def test_spans_under_entities_key(tmp_path):
    line = json.dumps({"text": "Ana vive.", "entities": [{"start": 0, "end": 3, "label": "PER"}]})
    assert "'entities'" in raises(tmp_path, jsonl(tmp_path, line), "jsonl", 2)


def test_record_without_text(tmp_path):
    path = jsonl(tmp_path, json.dumps({"body": "Ana", "spans": []}))
    assert "no string field 'text'" in raises(tmp_path, path, "jsonl", 2)


def test_record_without_spans_key(tmp_path):
    path = jsonl(tmp_path, json.dumps({"text": "Ana vive."}))
    message = raises(tmp_path, path, "jsonl", 2)
    assert "no 'spans'" in message and '"spans": []' in message
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {"no_spans": 1} and len(docs) == 2


def test_unknown_keys_are_listed(tmp_path, capsys):
    path = jsonl(tmp_path, json.dumps({"text": "Ana vive.", "spans": [], "annotator": "x", "Ana vive": 1}))
    report, _ = run(tmp_path, path, "jsonl")
    assert any("'annotator'" in w and f"{path}:2" in w for w in report["warnings"])
    assert not any("Ana vive" in w for w in report["warnings"])  # a key that is not a name is not quoted


@pytest.mark.parametrize("span, words", [
    ({"start": 0.7, "end": 3, "label": "PER"}, "integers"),
    ({"start": 9.7, "end": 12, "label": "PER"}, "integers"),
    ({"start": True, "end": 3, "label": "PER"}, "integers"),
    ({"start": 0, "end": 3, "label": None}, "non-empty string"),
    ({"start": 0, "end": 3, "label": ""}, "non-empty string"),
    ({"start": 0, "end": 3, "label": "  "}, "non-empty string"),
])
def test_offsets_and_labels_are_not_cast(tmp_path, span, words):
    path = jsonl(tmp_path, json.dumps({"text": "Ana vive en Lund.", "spans": [span]}))
    assert words in raises(tmp_path, path, "jsonl", 2)


@pytest.mark.parametrize("line", [
    '{"text": "Ana", "spans": 5}',
    '{"text": "Ana", "spans": [{"start": 0, "end": Infinity, "label": "X"}]}',
    '{"text": "Ana", "spans": [{"start": 0, "end": 1e400, "label": "X"}]}',
    '{"text": "Ana \\ud800", "spans": []}',
])
def test_unreadable_values(tmp_path, line):
    raises(tmp_path, jsonl(tmp_path, line), "jsonl", 2)


def test_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path, [JSONL_GOOD, {**JSONL_GOOD, "text": "Otra nota."}])
    message = raises(tmp_path, path, "jsonl", 2)
    assert f"{path.name}:1" in message  # where the id was first used
    report, docs = run(tmp_path, path, "jsonl", lenient=True)
    assert report["skipped"] == {"duplicate_id": 1} and len(docs) == 1


def test_generated_id_colliding_with_a_given_one(tmp_path):
    path = write_jsonl(tmp_path, [{**JSONL_GOOD, "id": "d-2"}, {k: v for k, v in JSONL_GOOD.items() if k != "id"}])
    raises(tmp_path, path, "jsonl", 2)


def test_line_separators_inside_a_json_string_are_accepted(tmp_path):
    record = {"id": "s", "text": "Ana\x85vive\u2028en Lund.", "spans": [{"start": 0, "end": 3, "label": "PER"}]}
    path = write_jsonl(tmp_path, [record, JSONL_GOOD])
    _, docs = run(tmp_path, path, "jsonl")
    assert docs[0].text == record["text"] and ents(docs) == [("PER", "Ana"), ("NOMBRE", SECRET)]


def test_text_over_spacy_max_length(tmp_path):
    text = "Ana vive. " * 100_001  # 1,000,010 characters: spaCy's make_doc raised ValueError
    path = write_jsonl(tmp_path, [JSONL_GOOD, {"id": "big", "text": text, "spans": [{"start": 0, "end": 3, "label": "PER"}]}])
    message = raises(tmp_path, path, "jsonl", 2)
    assert "1,000,010 characters" in message and "--split" in message


def test_text_over_max_length_is_cut_with_split(tmp_path, monkeypatch):
    # The same case, converted with --split chunks; a small limit keeps the test quick.
    def small_nlp(lang, tokenizer="deid.clinical_tokenizer.v1"):
        nlp = make_nlp(lang, tokenizer)
        nlp.max_length = 1000
        return nlp

    monkeypatch.setattr(convert_module, "make_nlp", small_nlp)
    text = "Ana vive. " * 101
    path = write_jsonl(tmp_path, [JSONL_GOOD, {"id": "big", "text": text, "spans": [{"start": 0, "end": 3, "label": "PER"}]}])
    raises(tmp_path, path, "jsonl", 2)
    report, docs = run(tmp_path, path, "jsonl", split="chunks", max_words=50)
    assert report["source_documents"] == 2 and len(docs) > 2 and all(len(d.text) < 1000 for d in docs)
    assert ents(docs) == [("NOMBRE", SECRET), ("PER", "Ana")]


def test_span_with_leading_space_is_trimmed_and_counted_once(tmp_path, capsys):
    record = {"id": "t", "text": "Vive en Madrid.", "spans": [{"start": 7, "end": 14, "label": "LOC"}]}
    report, docs = run(tmp_path, write_jsonl(tmp_path, [record]), "jsonl")
    assert ents(docs) == [("LOC", "Madrid")]
    assert report["misaligned"] == [] and report["warnings"] == []  # a repair, not a warning
    assert report["trimmed"] == [f"{tmp_path / 'd.jsonl'}:1 span 0"]
    print_report(report)
    assert "1 span(s) had white space at an edge" in capsys.readouterr().out


def test_whitespace_only_span_is_an_error(tmp_path):
    record = {"id": "t", "text": "Vive en  Madrid.", "spans": [{"start": 7, "end": 9, "label": "LOC"}]}
    raises(tmp_path, write_jsonl(tmp_path, [record]), "jsonl", 1)


# BRAT ---------------------------------------------------------------------------------------


def test_bom_at_start_of_ann_keeps_the_first_annotation(tmp_path):
    folder = one_brat(tmp_path, "Vive en Madrid con Ana.\n", "\ufeffT1\tLOC 8 14\tMadrid\nT2\tPER 19 22\tAna\n")
    _, docs = run(tmp_path, folder, "brat")
    assert ents(docs) == [("LOC", "Madrid"), ("PER", "Ana")]


def test_brat_empty_label(tmp_path):
    folder = one_brat(tmp_path, "Vive en Madrid.\n", "T1\t 8 14\tMadrid\n")
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    assert_names(err, folder / "x.ann", 1)


def test_brat_span_with_leading_space(tmp_path):
    folder = one_brat(tmp_path, "Vive en Madrid.\n", "T1\tLOC 7 14\t Madrid\n")
    report, docs = run(tmp_path, folder, "brat")
    assert ents(docs) == [("LOC", "Madrid")] and report["misaligned"] == []
    assert report["trimmed"] == [f"{folder / 'x.ann'}:1"]


def test_ann_without_txt(tmp_path):
    folder = one_brat(tmp_path, "Vive en Madrid.\n", "T1\tLOC 8 14\tMadrid\n")
    (folder / "y.ann").write_text("T1\tLOC 0 4\tVive\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        run(tmp_path, folder, "brat")
    assert "y.ann" in str(err.value) and "no .txt" in str(err.value)
    report, docs = run(tmp_path, folder, "brat", lenient=True)
    assert report["skipped"] == {"missing_txt": 1} and len(docs) == 1


def test_upper_case_txt_is_read(tmp_path):
    folder = one_brat(tmp_path, "Vive en Madrid.\n", "T1\tLOC 8 14\tMadrid\n")
    (folder / "Z.TXT").write_text("Ana vive.\n", encoding="utf-8")
    (folder / "Z.ANN").write_text("T1\tPER 0 3\tAna\n", encoding="utf-8")
    _, docs = run(tmp_path, folder, "brat")
    assert sorted(ents(docs)) == [("LOC", "Madrid"), ("PER", "Ana")]


# CoNLL --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bioes", "iobes", "auto"])
def test_bioes_tags_are_read(tmp_path, scheme):
    path = conll(tmp_path, ["Juan\tB-PER", "Pérez\tE-PER", "en\tO", "Lund\tS-LOC"])
    _, docs = run(tmp_path, path, "conll", tag_scheme=scheme)
    assert ents(docs) == [("PER", SECRET), ("LOC", "Lund")]


def test_entity_across_a_sentence_break_warns(tmp_path):
    path = conll(tmp_path, ["Juan\tB-PER", "", "Pérez\tI-PER", "vive\tO"])
    report, docs = run(tmp_path, path, "conll")
    assert ents(docs) == [("PER", "Juan"), ("PER", "Pérez")]
    assert any(f"{path}:3" in w and "sentence break" in w for w in report["warnings"])


def test_bom_on_first_conll_token(tmp_path):
    path = tmp_path / "bom.conll"
    path.write_text("\ufeffAna\tB-PER\nvive\tO\n", encoding="utf-8")
    _, docs = run(tmp_path, path, "conll")
    assert docs[0][0].text == "Ana" and ents(docs) == [("PER", "Ana")]


def test_conll_empty_label(tmp_path):
    path = conll(tmp_path, ["Ana\tB-", "vive\tO"])
    raises(tmp_path, path, "conll", 1)


# A corpus folder ----------------------------------------------------------------------------


def corpus_folder(tmp_path, train, test, dev=None):
    data = tmp_path / "data"
    data.mkdir()
    for split, records in (("train", train), ("test", test), ("dev", dev)):
        if records is not None:
            write_jsonl(data, records, f"{split}.jsonl")
    return data


def test_one_training_document_and_no_dev(tmp_path):
    data = corpus_folder(tmp_path, [JSONL_GOOD], [JSONL_GOOD])
    with pytest.raises(CorpusError) as err:
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "train.jsonl" in str(err.value) and "too few" in str(err.value)
    assert not (tmp_path / "out" / "train.spacy").exists()


def test_split_without_entities_is_an_error(tmp_path):
    empty = [{"id": "e", "text": "Sin datos.", "spans": []}]
    data = corpus_folder(tmp_path, [JSONL_GOOD, {**JSONL_GOOD, "id": "h"}], empty)
    with pytest.raises(CorpusError) as err:
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "test.jsonl" in str(err.value) and "no entities" in str(err.value)
    assert not (tmp_path / "out" / "test.spacy").exists()


def test_test_labels_never_seen_in_train_warn(tmp_path, capsys):
    test = [{"id": "t", "text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC"}]}]
    data = corpus_folder(tmp_path, [JSONL_GOOD, {**JSONL_GOOD, "id": "h"}], test)
    reports = prepare(data, tmp_path / "out", "jsonl", "es")
    assert any("LOC" in w and "train" in w for w in reports["test"]["warnings"])
    print_report(reports["test"])
    out = capsys.readouterr().out
    assert "LOC" in out and "✔" not in out  # no success mark over a warning


def test_cli_zero_entities_fails(tmp_path):
    empty = [{"id": "e", "text": "Sin datos.", "spans": []}, {"id": "f", "text": "Nada.", "spans": []}]
    data = corpus_folder(tmp_path, empty, empty)
    app = typer.Typer()
    app.command()(prepare_main)
    result = CliRunner().invoke(app, [str(data), str(tmp_path / "out"), "--format", "jsonl", "--lang", "es"])
    assert result.exit_code == 1 and "no entities" in result.output
    assert "Corpus ready" not in result.output


def test_cli_warnings_replace_the_success_mark(tmp_path):
    test = [{"id": "t", "text": "Vive en Lund.", "spans": [{"start": 8, "end": 12, "label": "LOC"}]}]
    data = corpus_folder(tmp_path, [JSONL_GOOD, {**JSONL_GOOD, "id": "h"}], test)
    app = typer.Typer()
    app.command()(prepare_main)
    result = CliRunner().invoke(app, [str(data), str(tmp_path / "out"), "--format", "jsonl", "--lang", "es"])
    assert result.exit_code == 0, result.output
    assert "labels the train part never has" in result.output and "LOC (1)" in result.output
    assert "Corpus ready" in result.output and "with 1 warning(s) above" in result.output
