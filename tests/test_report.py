"""The run report: inputs built by the pipeline's own functions (scores by deid_synthesis.evaluate,
label rates by deid_synthesis.annotate, privacy figures by deid_synthesis.privacy) on tiny documents; the
report must carry their numbers, explain the loss by the stated rule, and never a PHI string."""
import json

import pytest
import spacy
import srsly
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

from deid_synthesis.annotate import compare_labels
from clinical_deid.scoring import score_docs
from deid_synthesis.privacy import privacy_report
from deid_synthesis.report import ReportError, default_paths, write_report
from scripts.report import main

TEXT = "Paciente Juan Pérez , de 45 años , vive en Madrid , ingresa en Hospital Sur ."
ENTS = {"NOMBRE": "Juan Pérez", "EDAD": "45 años", "TERRITORIO": "Madrid", "HOSPITAL": "Hospital Sur"}
PHI = "Juan Pérez"  # reproduced verbatim by a synthetic note below
N_DOCS = 10


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("es")


def doc(nlp, labels):
    d = nlp.make_doc(TEXT)
    d.ents = [d.char_span(TEXT.index(ENTS[lab]), TEXT.index(ENTS[lab]) + len(ENTS[lab]), label=lab) for lab in labels]
    return d


def scores(nlp, missed):
    """Scores of a model that misses label L in the first missed[L] of the documents."""
    gold = [doc(nlp, ENTS) for _ in range(N_DOCS)]
    pred = [doc(nlp, [lab for lab in ENTS if i >= missed.get(lab, 0)]) for i in range(N_DOCS)]
    return json.loads(json.dumps(score_docs(gold, pred)))


# The annotator misses half the hospitals; the synthetic model misses names, ages and hospitals.
# Expected causes: NOMBRE volume/other (well produced), EDAD generator (5 vs 20 per 1k words),
# HOSPITAL annotator (own F1 0.667 < 0.9, checked before the generator although also rare).
GOLD_MISSED = {"HOSPITAL": 5}
SYNTH_MISSED = {"NOMBRE": 6, "EDAD": 4, "HOSPITAL": 7}
SYNTH_LABELS = {"NOMBRE": 18, "EDAD": 5, "TERRITORIO": 20, "HOSPITAL": 4}


def write_inputs(nlp, root, tmp_path, synth_missed=SYNTH_MISSED, optional=True):
    paths = {name: root / path for name, path in default_paths("ds", "run1", "cfg").items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(paths["gold_scores"], scores(nlp, GOLD_MISSED))
    srsly.write_json(paths["synthetic_scores"], scores(nlp, synth_missed))
    if not optional:
        return paths
    gold_stats = {"documents": 50, "words": 1000, "entities": 80, "per_label": {lab: 20 for lab in ENTS}}
    synth_stats = {"documents": 40, "words": 1000, "entities": sum(SYNTH_LABELS.values()), "per_label": SYNTH_LABELS}
    srsly.write_json(paths["annotate_report"], {
        "documents": 40, "chunks": 45, "words": 1000, "entities": synth_stats["entities"], "seconds": 3.5,
        "max_words": 128, "seed": 0, "batch_size": 64, "n_process": 1, "synthetic": synth_stats, "gold": gold_stats,
        "per_label": compare_labels(synth_stats, gold_stats)})
    srsly.write_json(paths["corpus_report"], {split: {"documents": n, "words": 20 * n, "entities": 4 * n,
                                                      "entities_per_label": {lab: n for lab in ENTS}}
                                              for split, n in (("train", 50), ("dev", 10), ("test", N_DOCS))})
    gold_path, synth_path = tmp_path / "train.spacy", tmp_path / "samples.jsonl"
    DocBin(docs=[doc(nlp, ENTS)], store_user_data=True).to_disk(gold_path)
    srsly.write_jsonl(synth_path, [{"id": "s0", "text": f"Visto {PHI} en consulta ."}, {"id": "s1", "text": "Sin cambios ."}])
    srsly.write_json(paths["privacy"], privacy_report(synth_path, gold_path, show_strings=True))
    srsly.write_json(paths["adapter_manifest"], {
        "base_model": "gemma3-270m", "fraction": 0.5, "n_documents": 25, "n_tokens": 4000, "steps": 3,
        "trainable_parameters": 1000, "device": "cpu", "seconds": 61.0, "loss_curve": [[1, 3.2], [2, 3.0], [3, 2.9]],
        "hyperparameters": {"rank": 8, "alpha": 32, "learning_rate": 0.0002, "seq_len": 128, "batch_size": 8, "seed": 7}})
    srsly.write_json(paths["generation_report"], {
        "prompts": 10, "samples_per_prompt": 4, "volume": 1.0, "target_words": 1000, "kept": 40, "dropped": {"loop": 1},
        "words": 1010, "tokens": 2500, "volume_reached": 1.01, "complete": True,
        "provenance": {"base_model": "gemma3-270m", "top_p": 0.95, "temperature": 1.0, "max_new_tokens": 256, "seed": 3},
        "sessions": [{"samples": 30, "tokens": 2000, "seconds": 100.0}, {"samples": 11, "tokens": 500, "seconds": 20.5}]})
    srsly.write_json(paths["membership"], {"auc": 0.512, "tpr_at_low_fpr": 0.02, "low_fpr": 0.01, "members": 100,
                                           "non_members": 100, "seconds": 300.0, "attack": "reference model",
                                           "loss_only": {"auc": 0.55},
                                           "roc": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.52, 1.0]}})
    srsly.write_json(paths["canaries"], {"n_candidates": 200, "table": [
        {"repeats": 16, "canaries": 10, "mean_exposure": 4.5, "max_exposure": 7.65, "ranked_first": 3,
         "mean_exposure_fit": 9.1, "extracted": 1}]})
    for name, seconds in (("gold_train_time", 300.0), ("synthetic_train_time", 240.0)):
        srsly.write_json(paths[name], {"seconds": seconds, "config": "configs/cfg.cfg", "gpu_id": -1,
                                       "overrides": {"training.max_steps": 600}})
    return paths


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_report(nlp, tmp_path):
    paths = write_inputs(nlp, tmp_path / "project", tmp_path)
    out = tmp_path / "report"
    write_report(paths, out)
    md, summary = (out / "report.md").read_text(encoding="utf8"), srsly.read_json(out / "report.json")
    for png in ("f1_per_label.png", "ratios.png", "entities_per_1k.png", "adapter_loss.png", "membership_roc.png"):
        assert is_png(out / png) and f"]({png})" in md
    gold, synth = (srsly.read_json(paths[k]) for k in ("gold_scores", "synthetic_scores"))
    strict = synth["ents_strict"]["f"] / gold["ents_strict"]["f"]
    assert strict < 0.95
    assert f"| strict F1 | {gold['ents_strict']['f']:.3f} | {synth['ents_strict']['f']:.3f} | {strict:.3f} |" in md
    assert f"{synth['token']['f'] / gold['token']['f']:.3f}" in md
    assert summary["overall"]["strict_f"]["ratio"] == pytest.approx(strict)
    # The loss section: largest F1 drop x support first, each with the cause of the stated rule.
    assert "## Where the synthetic model loses" in md
    assert [(r["label"], r["cause"]) for r in summary["losses"]] == [
        ("NOMBRE", "volume/other"), ("EDAD", "generator"), ("HOSPITAL", "annotator")]
    loss = md[md.index("## Where the synthetic model loses"):md.index("## Corpus statistics")]
    assert loss.index("| NOMBRE | 10 |") < loss.index("| EDAD | 10 |") < loss.index("| HOSPITAL | 10 |")
    assert "below 0.9" in md and "0.5 × gold's" in md
    # Corpus, privacy counts, settings and times come from their files.
    assert "| synthetic (machine-annotated) | 40 | 1,000 | 47 |" in md
    privacy = srsly.read_json(paths["privacy"])
    assert f"**{privacy['ngram']['recall']:.4f}**" in md
    total = privacy["phi"]["total"]
    assert f"| total | {total['strings']} | {total['reproduced']} | {total['synthetic_docs']} |" in md
    assert "| learning_rate | 0.0002 |" in md and "| seed | 7 |" in md and "| seed | 3 |" in md
    assert "| generate | 120.5 | 2.0 |" in md and "| adapt | 61.0 | 1.0 |" in md
    # The attacks and the record linkage (one synthetic note holds one real string: not linked).
    assert "ROC AUC **0.512**, TPR at 1% FPR **0.020** (the loss alone: AUC 0.550)" in md
    assert "| 16 | 10 | 4.500 | 7.650 | 3 | 9.100 | 1 |" in md
    assert "Record linkage: **0 of 2** synthetic notes" in md


def test_no_phi_string_in_report(nlp, tmp_path):
    paths = write_inputs(nlp, tmp_path / "project", tmp_path)
    as_text = lambda path: json.dumps(srsly.read_json(path), ensure_ascii=False)  # noqa: E731 (srsly escapes é)
    assert PHI in as_text(paths["privacy"])  # the input does hold one
    out = tmp_path / "report"
    write_report(paths, out)
    assert PHI not in (out / "report.md").read_text(encoding="utf8") and PHI not in as_text(out / "report.json")


def test_no_loss_section_at_target(nlp, tmp_path):
    paths = write_inputs(nlp, tmp_path / "project", tmp_path, synth_missed=GOLD_MISSED)
    write_report(paths, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf8")
    assert "Where the synthetic model loses" not in md and "1.000 ≥ target 0.95" in md
    assert srsly.read_json(tmp_path / "report" / "report.json")["losses"] == []


def test_missing_optional_inputs_say_not_run(nlp, tmp_path):
    paths = write_inputs(nlp, tmp_path / "project", tmp_path, optional=False)
    summary = write_report(paths, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf8")
    assert "the privacy step was not run" in md and "the annotate step was not run" in md
    assert "| train synthetic | not run | - |" in md and "No adapter file: not run." in md
    assert is_png(tmp_path / "report" / "f1_per_label.png")
    assert not (tmp_path / "report" / "entities_per_1k.png").exists()
    assert "generator not checked" in md
    assert {r["label"]: r["cause"] for r in summary["losses"]}["EDAD"] == "volume/other"


def test_missing_scores_name_the_file(nlp, tmp_path):
    paths = write_inputs(nlp, tmp_path / "project", tmp_path, optional=False)
    paths["synthetic_scores"].unlink()
    with pytest.raises(ReportError, match="synthetic-run1-cfg.json"):
        write_report(paths, tmp_path / "report")


def test_cli_default_and_explicit_paths(nlp, tmp_path, monkeypatch):
    write_inputs(nlp, tmp_path, tmp_path)  # the default layout, relative to the working directory
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.command()(main)
    args = ["--dataset", "ds", "--run", "run1", "--config", "cfg", "--output", "reports/ds/run1-cfg"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports/ds/run1-cfg/report.md").is_file()
    result = CliRunner().invoke(app, args + ["--privacy", "nowhere.json"])
    assert result.exit_code == 0 and "privacy step was not run" in (tmp_path / "reports/ds/run1-cfg/report.md").read_text()
    result = CliRunner().invoke(app, args + ["--gold-scores", "nowhere.json"])
    assert result.exit_code == 1 and "nowhere.json" in result.output
