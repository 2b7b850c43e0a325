"""Privacy against every real split the run touched: the dev split of the prompts, train + dev,
and the prompts (and sample openings) that hold PHI of their own dev note."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import srsly
from spacy.tokens import DocBin
from typer.testing import CliRunner

from deid_synthesis.privacy import find_own_phi, phi_word_runs, privacy_report, prompt_phi
from tests.privacy_data import files, gold, nlp, cli, dev_docs, dev_rows, gold_docs, write_files  # noqa: F401  (fixtures)


@pytest.fixture()
def dev(nlp):
    return dev_docs(nlp)


def test_own_phi_is_matched_as_whole_words_regardless_of_case_and_accents(dev):
    runs = phi_word_runs(dev[1])
    assert set(runs) == {("carlos", "nunez"), ("varon",)}
    assert find_own_phi("visto: CARLOS NUNEZ.", runs) and find_own_phi("un varón", runs)
    assert not find_own_phi("Carlosa Núñez", runs) and not find_own_phi("Carlos y Núñez", runs)
    assert find_own_phi("Nombre: Carlos", runs)  # cut off by the end of the prompt
    assert not find_own_phi("Nombre: Carlos visto", runs)
    assert not find_own_phi("", runs) and not find_own_phi("Carlos Núñez", {})


def test_privacy_counts_the_dev_split_and_the_prompts(files, dev, tmp_path):
    _, gold_path = files
    synth, dev_path = tmp_path / "dev_run.jsonl", tmp_path / "dev.spacy"
    srsly.write_jsonl(synth, dev_rows())
    DocBin(docs=dev, store_user_data=True).to_disk(dev_path)
    train_only = privacy_report(synth, gold_path)
    report = privacy_report(synth, gold_path, dev_path=dev_path)
    # The training side is as before; dev and train + dev are added.
    for key in ("ngram", "phi", "real_documents", "real_words"):
        assert report[key] == train_only[key]
    splits = report["splits"]
    assert splits["train"]["phi"] == report["phi"] and splits["dev"]["documents"] == 2
    assert splits["union"]["documents"] == 6
    # Identifying reproduced: train "Ana García López"; dev "Beatriz Soto Ruiz" ("carlos nuñez" differs in case,
    # "Madrid" is annotated in 4 documents of train + dev).
    assert report["phi"]["total"]["identifying_reproduced"] == 1
    assert splits["dev"]["phi"]["total"]["identifying_reproduced"] == 1
    assert splits["dev"]["phi"]["per_label"]["TERRITORIO"]["identifying_strings"] == 0
    assert splits["union"]["phi"]["total"]["identifying_reproduced"] == 2
    assert splits["dev"]["ngram"]["shared_ngrams"] > 0 and splits["dev"]["ngram"]["recall"] > 0
    # The filter drops notes with identifying PHI of either split.
    assert train_only["filter"]["dropped_phi"] == 1 and report["filter"]["dropped_phi"] == 2
    assert report["filter"]["against"] == ["train", "dev"]
    assert report["prompt_phi"] == prompt_phi(dev_rows(), dev)
    assert {k: report["prompt_phi"][k] for k in ("prompts", "prompts_with_own_phi", "samples",
                                                 "sample_openings_with_own_phi", "samples_without_prompt_id",
                                                 "per_label")} == {
        "prompts": 2, "prompts_with_own_phi": 1, "samples": 3, "sample_openings_with_own_phi": 2,
        "samples_without_prompt_id": 1, "per_label": {"NOMBRE": 1}}
    text = json.dumps(report)
    assert "Beatriz" not in text and "Carlos" not in text and "Ana" not in text


def flat(output):
    """Console output with wasabi's line wrapping undone, lower case."""
    return " ".join(output.split()).lower()


def test_cli_with_dev_and_the_prompt_check(files, dev, tmp_path):
    _, gold_path = files
    synth, clean, dev_path, out = (tmp_path / "run.jsonl", tmp_path / "clean.jsonl", tmp_path / "dev.spacy",
                                   tmp_path / "privacy.json")
    srsly.write_jsonl(synth, dev_rows())
    srsly.write_jsonl(clean, dev_rows()[1:2])
    DocBin(docs=dev, store_user_data=True).to_disk(dev_path)
    result = CliRunner().invoke(cli(), [str(synth), str(gold_path), "--dev", str(dev_path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "prompts with phi of their dev note: 1 of 2" in flat(result.output)
    assert json.loads(out.read_text())["splits"]["dev"]["documents"] == 2
    for text in (result.output, out.read_text()):
        assert "Beatriz" not in text and "Carlos" not in text
    root = Path(__file__).resolve().parent.parent
    check = [sys.executable, "-m", "scripts.privacy", "prompts"]
    leaky = subprocess.run(check + [str(synth), str(dev_path)], cwd=root, capture_output=True, text=True)
    assert leaky.returncode == 1 and "prompts with phi of their dev note: 1 of 2" in flat(leaky.stdout)
    assert "Beatriz" not in leaky.stdout + leaky.stderr
    ok = subprocess.run(check + [str(clean), str(dev_path)], cwd=root, capture_output=True, text=True)
    assert ok.returncode == 0 and "prompts with phi of their dev note: 0 of 1" in flat(ok.stdout)


def test_the_report_shows_the_splits_and_the_prompt_check(files, dev, tmp_path):
    from deid_synthesis.report_privacy import privacy_counts, privacy_md

    _, gold_path = files
    synth, dev_path = tmp_path / "run.jsonl", tmp_path / "dev.spacy"
    srsly.write_jsonl(synth, dev_rows())
    DocBin(docs=dev, store_user_data=True).to_disk(dev_path)
    counts = privacy_counts(privacy_report(synth, gold_path, dev_path=dev_path, show_strings=True))
    assert counts["splits"]["dev"]["identifying_reproduced"] == 1 and counts["prompt_phi"]["prompts_with_own_phi"] == 1
    md = "".join(privacy_md(counts))
    assert "| dev | 2 |" in md and "own dev note: **1 of 2**" in md and "Beatriz" not in md
    old = privacy_counts(privacy_report(synth, gold_path))  # without --dev: as before
    assert old["splits"] == {} and old["prompt_phi"] == {} and "own dev note" not in "".join(privacy_md(old))
