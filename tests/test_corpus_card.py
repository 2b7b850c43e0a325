"""The corpus card: the demo corpus says it is a demo, conversion carries the card into
corpus/<dataset>/report.json, the run report prints it before any figure, and a bad card is
refused with the file named before anything is converted."""
import json

import pytest
import spacy
from typer.testing import CliRunner
import typer

from deid_synthesis.corpus.card import CARD_FILE, read_card
from deid_synthesis.corpus.demo import generate_corpus, write_corpus
from deid_synthesis.corpus.prepare import prepare
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.report import write_report
from scripts.prepare_corpus import main as prepare_main
from test_report import write_inputs


@pytest.fixture
def demo_dir(tmp_path):
    data = tmp_path / "demo"
    write_corpus(data, generate_corpus("es", n_train=6, n_dev=2, n_test=2, seed=0))
    return data


def test_demo_corpus_writes_a_demo_card(demo_dir):
    card = read_card(demo_dir)
    assert card["demo"] is True and "template" in card["about"] and "Faker" in card["about"]


def test_prepare_carries_the_card_and_parts_stay_dicts(demo_dir, tmp_path):
    reports = prepare(demo_dir, tmp_path / "corpus", "jsonl", "es")
    written = json.loads((tmp_path / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert written["demo"] is True and written["about"] == read_card(demo_dir)["about"]
    assert sorted(k for k, v in written.items() if isinstance(v, dict)) == ["dev", "test", "train"]
    assert reports["train"]["documents"] == 6


def test_prepare_command_prints_the_card(demo_dir, tmp_path):
    app = typer.Typer()
    app.command()(prepare_main)
    result = CliRunner().invoke(app, [str(demo_dir), str(tmp_path / "corpus"), "--format", "jsonl", "--lang", "es"])
    assert result.exit_code == 0, result.output
    assert "Corpus card: the embedded demo corpus" in result.output


def test_no_card_no_keys(tmp_path, demo_dir):
    (demo_dir / CARD_FILE).unlink()
    assert read_card(demo_dir) is None
    prepare(demo_dir, tmp_path / "corpus", "jsonl", "es")
    written = json.loads((tmp_path / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert "demo" not in written and "about" not in written


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"demo": "yes"}', "'demo' must be a bool"),
    ('{"about": 5}', "'about' must be a str"),
    ('{"demo": true, "licence": "x"}', "unknown key 'licence'"),
])
def test_bad_card_is_refused_before_conversion(demo_dir, tmp_path, content, message):
    (demo_dir / CARD_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare(demo_dir, tmp_path / "corpus", "jsonl", "es")
    assert CARD_FILE in str(err.value) and message in str(err.value)
    assert not (tmp_path / "corpus" / "train.spacy").exists()


@pytest.mark.parametrize("card, expected", [
    ({"demo": True, "about": "template notes."}, "> **This is a demo, not a result.** The corpus is template notes."),
    ({"demo": False, "about": "our ward's notes."}, "> Corpus: our ward's notes."),
])
def test_report_prints_the_card_before_any_figure(tmp_path, card, expected):
    paths = write_inputs(spacy.blank("es"), tmp_path / "project", tmp_path)
    corpus = json.loads(paths["corpus_report"].read_text(encoding="utf-8"))
    paths["corpus_report"].write_text(json.dumps({**corpus, **card}), encoding="utf-8")
    summary = write_report(paths, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert expected in md and md.index(expected) < md.index("| strict F1 |")
    assert summary["corpus_card"] == card
    assert sorted(summary["corpus"]["gold"]) == ["dev", "test", "train"]
