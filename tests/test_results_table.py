"""`results`: an incomplete run (a figure missing or None, no gold entities, no model, a file
that is no JSON) is skipped with a message naming its file; the other runs are still listed."""
import srsly
import typer
from typer.testing import CliRunner

from deid_synthesis.results_table import collect_rows
from scripts.results_table import main


def scores(f=0.9, tp=9, fn=1):
    part = lambda: {"p": f, "r": f, "f": f, "tp": tp, "fp": 1, "fn": fn}  # noqa: E731
    return {"n_docs": 2, "ents_strict": part(), "spans_strict": part(), "spans_merged": part(), "token": part(),
            "leak": {"missed": 1, "gold_entities": 10, "sentences": 20, "leak_score": 0.05}}


def add_run(root, dataset, config, figures, model=True, spacy_figures=None):
    path = root / "metrics" / dataset / f"{config}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(figures, str):
        path.write_text(figures, encoding="utf8")
    else:
        srsly.write_json(path, figures)
    if spacy_figures is not None:
        srsly.write_json(path.with_name(f"{config}.spacy-evaluate.json"), spacy_figures)
    if model:
        (root / "training" / dataset / config / "model-best").mkdir(parents=True)
    return path


def test_incomplete_runs_are_skipped_with_their_file_named(tmp_path):
    add_run(tmp_path, "demo", "ner_cpu", scores(), spacy_figures={"ents_p": 0.9, "ents_r": 0.9, "ents_f": 0.9})
    # The case: a corpus converted to 0 entities; spacy evaluate gave None figures.
    empty = scores(f=0.0, tp=0, fn=0)
    add_run(tmp_path, "mine", "ner_cpu", empty, spacy_figures={"ents_p": None, "ents_r": None, "ents_f": None})
    no_figure = scores()
    no_figure["spans_merged"]["f"] = None
    add_run(tmp_path, "mine", "none_figure", no_figure)
    no_key = scores()
    del no_key["token"]
    add_run(tmp_path, "mine", "no_token", no_key)
    add_run(tmp_path, "old", "ner_cpu", scores(), model=False)
    add_run(tmp_path, "old", "cut", '{"ents_strict": {"p": 0.')
    add_run(tmp_path, "demo", "rules-ner_cpu", [["DATE", 0.1]])  # not a scores file: passed over silently

    rows, skipped = collect_rows(tmp_path / "metrics", tmp_path / "training")
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [("demo", "ner_cpu", "0.9000", "yes")]
    reasons = {path.relative_to(tmp_path).as_posix(): reason for path, reason in skipped}
    assert reasons == {
        "metrics/mine/ner_cpu.json": "no gold entities in the test set (a corpus converted to 0 entities?)",
        "metrics/mine/none_figure.json": "spans_merged.f is null (an evaluation over no entities, "
                                         "or an interrupted run?)",
        "metrics/mine/no_token.json": "token.f is missing (an evaluation over no entities, or an interrupted run?)",
        "metrics/old/ner_cpu.json": f"no model {tmp_path / 'training/old/ner_cpu/model-best'} "
                                    "(deleted, or a run that never finished)",
        "metrics/old/cut.json": "not JSON (ValueError)",
    }

    app = typer.Typer()
    app.command()(main)
    output = tmp_path / "metrics" / "results.md"
    result = CliRunner().invoke(app, [str(tmp_path / "metrics"), str(tmp_path / "training"), "--output", str(output)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"Skipped {tmp_path / 'metrics/mine/ner_cpu.json'}: no gold entities" in text
    assert "1 scored runs" in text and "(5 incomplete, skipped)" in text
    assert "| demo | ner_cpu | 0.9000 |" in output.read_text(encoding="utf8")


def test_spacy_evaluate_without_figures_is_no_type_error(tmp_path):
    path = add_run(tmp_path, "demo", "ner_cpu", scores(), spacy_figures={"ents_p": None, "ents_r": 0.5})
    rows, skipped = collect_rows(tmp_path / "metrics", tmp_path / "training")
    assert not skipped and rows[0][5] == "no figures"
    path.with_name("ner_cpu.spacy-evaluate.json").write_text("{", encoding="utf8")
    assert collect_rows(tmp_path / "metrics", tmp_path / "training")[0][0][5] == "unreadable"
