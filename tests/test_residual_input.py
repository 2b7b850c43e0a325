"""The production check on any corpus format: gold read by the converters' readers (their
ids), the command's output matched to it (records without ids too), and output that matches
too little of the gold is an error, never a quiet exit 0."""
import json

import pytest
import spacy
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.deidentify import deidentify_main
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.residual_input import gold_source, jsonl_line_ids, read_gold
from scripts.gold_texts import main as gold_texts_main
from scripts.residual_phi import main as residual_main

NOTES = [("Paciente Ana García, 45 años, vive en Madrid.", [("NAME", "Ana García"), ("CITY", "Madrid")]),
         ("Control de Luis Pérez en Madrid.", [("NAME", "Luis Pérez"), ("CITY", "Madrid")])]
PHI = ("Ana", "García", "Luis", "Pérez", "Madrid")


def app(main):
    typer_app = typer.Typer()
    typer_app.command()(main)
    return typer_app


@pytest.fixture(scope="module")
def nlp():
    """A pipeline that finds the names and the city (not Luis Pérez: one missed entity)."""
    pipeline = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    pipeline.add_pipe("entity_ruler").add_patterns(
        [{"label": "NAME", "pattern": "Ana García"}, {"label": "CITY", "pattern": "Madrid"}])
    return pipeline


def spans_of(text, ents):
    return [{"start": text.index(s), "end": text.index(s) + len(s), "label": label} for label, s in ents]


def write_jsonl_corpus(path, with_ids=False):
    """The README's JSONL format, records without ids, a blank line between them."""
    lines = [json.dumps({**({"id": f"n{i}"} if with_ids else {}), "text": text, "spans": spans_of(text, ents)},
                        ensure_ascii=False) for i, (text, ents) in enumerate(NOTES)]
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n", encoding="utf8")
    return path


def write_conll_corpus(path):
    rows = []
    for text, ents in NOTES:
        phi_words = {w: label for label, s in ents for w in s.split()}
        tokens = text.replace(",", " ,").replace(".", " .").split()
        rows += [f"{t}\t{'I-' + phi_words[t] if t in phi_words else 'O'}" for t in tokens] + [""]
    path.write_text("\n".join(rows), encoding="utf8")
    return path


def deidentify(nlp, input_path, tmp_path):
    out, spans = tmp_path / "out.jsonl", tmp_path / "spans.jsonl"
    deidentify_main(nlp, input_path, out, spans_output=spans, silent=True, key=bytes(range(32)))
    return out, spans


def check(gold, out, spans, *args):
    return CliRunner().invoke(app(residual_main), [str(gold), str(out), "--spans", str(spans),
                                                   "--output", str(out.with_name("residual.json")), *args])


def assert_checked(result, out):
    """Both documents matched; the missed name is the one leak; no PHI in what was printed or written."""
    assert result.exit_code == 0, result.output
    figures = json.loads(out.with_name("residual.json").read_text(encoding="utf8"))
    assert figures["documents"] == 2 and figures["documents_without_output"] == 0
    assert (figures["overall"]["gold_entities"], figures["overall"]["not_found"], figures["overall"]["leaked"]) == (4, 1, 1)
    assert figures["overall"]["violations"] == 0
    for phi in PHI:
        assert phi not in result.output and phi not in out.with_name("residual.json").read_text(encoding="utf8")


def test_jsonl_without_ids_matches_the_command_run_on_it(nlp, tmp_path):
    """The command read the JSONL as it was: its output records have no id, its spans the
    command's "line N"; the converter's ids (<stem>-<line>) match them line by line."""
    corpus = write_jsonl_corpus(tmp_path / "test.jsonl")
    assert jsonl_line_ids(corpus) == ["test-1", "test-3"]
    assert [d.id for d in read_gold(corpus)] == ["test-1", "test-3"]
    out, spans = deidentify(nlp, corpus, tmp_path)
    assert "id" not in json.loads(out.read_text(encoding="utf8").splitlines()[0])
    assert_checked(check(corpus, out, spans), out)


def test_output_that_matches_no_gold_document_is_an_error(nlp, tmp_path):
    """The same output against a gold whose ids it cannot give (another file): exit 1, naming
    the output file, the count and example ids, never a text."""
    corpus = write_jsonl_corpus(tmp_path / "test.jsonl")
    out, spans = deidentify(nlp, corpus, tmp_path)
    other = write_jsonl_corpus(tmp_path / "other.jsonl", with_ids=True)
    result = check(other, out, spans)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "only 0 of 2 gold documents have an output" in text and "2 output records have no id" in text
    assert "'n0'" in text and not any(phi in result.output for phi in PHI)


def test_docbin_of_a_jsonl_without_ids_matches_through_the_spans(nlp, tmp_path):
    """The issue's case: the gold DocBin `convert` wrote (ids test-1, test-3), the output of the
    command run on the JSONL: the spans' "line N" ids say which record each output is; without
    the spans file nothing matches, and that is an error that says what to give."""
    corpus = write_jsonl_corpus(tmp_path / "test.jsonl")
    convert(corpus, tmp_path / "test.spacy", "jsonl", "es")
    out, spans = deidentify(nlp, corpus, tmp_path)
    assert_checked(check(tmp_path / "test.spacy", out, spans), out)
    result = CliRunner().invoke(app(residual_main), [str(tmp_path / "test.spacy"), str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "only 0 of 2 gold documents have an output; 2 output records have no id" in text
    assert "gold ids: 'test-1', 'test-3'; output ids: none" in text


def test_conll_data_folder_through_gold_texts(nlp, tmp_path):
    """CoNLL: the command's input written with the converter's ids, the gold read from the data
    folder's test part, as production-check runs them."""
    data = tmp_path / "data"
    data.mkdir()
    write_conll_corpus(data / "test.conll")
    command_input = tmp_path / "check" / "input.jsonl"
    result = CliRunner().invoke(app(gold_texts_main), [str(data), str(command_input), "--format", "conll",
                                                       "--part", "test"])
    assert result.exit_code == 0, result.output
    assert "1 documents →" in " ".join(result.output.split())  # ten sentences a document
    assert [json.loads(line)["id"] for line in command_input.read_text().splitlines()] == ["test-00000"]
    out, spans = deidentify(nlp, command_input, tmp_path)
    result = check(data, out, spans, "--format", "conll", "--part", "test")
    assert result.exit_code == 0, result.output
    figures = json.loads(out.with_name("residual.json").read_text(encoding="utf8"))
    assert figures["documents"] == 1 and figures["overall"]["gold_entities"] == 4
    assert figures["overall"]["not_found"] == 1 and figures["overall"]["violations"] == 0


def test_brat_and_jsonl_data_folders_through_gold_texts(nlp, tmp_path):
    for fmt in ("brat", "jsonl"):
        data = tmp_path / fmt
        if fmt == "brat":
            (data / "test").mkdir(parents=True)
            for i, (text, ents) in enumerate(NOTES):
                (data / "test" / f"note{i}.txt").write_text(text, encoding="utf8")
                ann = [f"T{j}\t{s['label']} {s['start']} {s['end']}\t{text[s['start']:s['end']]}"
                       for j, s in enumerate(spans_of(text, ents), 1)]
                (data / "test" / f"note{i}.ann").write_text("\n".join(ann) + "\n", encoding="utf8")
        else:
            data.mkdir()
            write_jsonl_corpus(data / "test.jsonl")
        command_input = data / "input.jsonl"
        args = ["--format", fmt, "--part", "test"]
        assert CliRunner().invoke(app(gold_texts_main), [str(data), str(command_input), *args]).exit_code == 0
        run = data / "run"
        run.mkdir()
        out, spans = deidentify(nlp, command_input, run)
        assert_checked(check(data, out, spans, *args), out)


def test_malformed_gold_is_an_error_or_counted_with_lenient(nlp, tmp_path):
    corpus = write_jsonl_corpus(tmp_path / "test.jsonl")
    out, spans = deidentify(nlp, corpus, tmp_path)
    lines = corpus.read_text(encoding="utf8").splitlines()
    bad = tmp_path / "bad" / "test.jsonl"
    bad.parent.mkdir()
    bad.write_text("\n".join(lines[:2] + [lines[2].replace('"label": "CITY"', '"label": 5')]) + "\n", encoding="utf8")
    result = check(bad, out, spans)
    assert result.exit_code == 1 and f"{bad}:3" in " ".join(result.output.split()).replace(" ", "")
    for flag in (["--lenient"], ["--malformed", "lenient"]):
        result = check(bad, out, spans, *flag)
        assert result.exit_code == 0, result.output
        assert "Skipped 1 malformed gold items (bad_span)" in " ".join(result.output.split())


def test_gold_source_and_duplicate_ids_say_what_to_do(tmp_path):
    (tmp_path / "notes.csv").write_text("x", encoding="utf8")
    with pytest.raises(CorpusError, match="cannot tell the gold format.*--format"):
        gold_source(tmp_path / "notes.csv")
    with pytest.raises(CorpusError, match="--part needs the corpus format"):
        gold_source(tmp_path, part="test")
    with pytest.raises(CorpusError, match="no test part in jsonl format"):
        gold_source(tmp_path, "jsonl", part="test")
    assert gold_source(tmp_path / "x.conll") == (tmp_path / "x.conll", "conll")
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"id": "a", "text": "x", "spans": []}\n{"id": "a", "text": "y", "spans": []}\n')
    with pytest.raises(CorpusError, match="twice.jsonl:2: .*already used|occur twice"):
        read_gold(twice)
    docs = [spacy.blank("es")(text) for text in ("x", "y")]  # a DocBin of --split pieces: one id twice
    for doc in docs:
        doc.user_data["id"] = "a"
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "pieces.spacy")
    with pytest.raises(CorpusError, match=r"pieces.spacy: 1 document ids occur twice or more \('a'\)"):
        read_gold(tmp_path / "pieces.spacy")


def test_most_documents_without_output_is_an_error_a_few_a_warning(tmp_path):
    from deid_synthesis.residual_input import match_problem

    out = tmp_path / "out.jsonl"
    assert match_problem(3, 2, ["a", "b", "c"], ["a", "b"], 0, out) is None  # the CLI warns of the one
    assert match_problem(3, 1, ["a", "b", "c"], ["a", "x"], 0, out) == (
        f"{out}: only 1 of 3 gold documents have an output; gold ids: 'a', 'b', 'c'; output ids: 'a', 'x'")
    assert match_problem(0, 0, [], [], 0, out, tmp_path / "test.jsonl") == (
        f"{tmp_path / 'test.jsonl'}: the gold holds no documents to check the output against")
