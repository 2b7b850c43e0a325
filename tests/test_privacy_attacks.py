"""Membership inference and canary exposure, on a tiny Gemma-style LM built offline from demo notes
(the real adaptation, loading and loss code; only the weights are small)."""
import random

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from deid_synthesis.corpus.demo import generate_split
from deid_synthesis.generation.adapt import adapt
from deid_synthesis.generation.tiny_model import build_tiny_model
from deid_synthesis.privacy.canaries import (CanaryError, canary_exposure, canary_reproduction, exposure,
                                             make_canaries, with_canaries)
from deid_synthesis.privacy.membership import attack_figures, membership_inference, roc_curve

ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def write_docbin(notes, path):
    nlp = spacy.blank("es")
    docbin = DocBin(store_user_data=True)
    for note in notes:
        doc = nlp.make_doc(note["text"])
        doc.user_data["id"] = note["id"]
        docbin.add(doc)
    docbin.to_disk(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model folder, train DocBin of 12 notes, dev DocBin of 12 other notes)."""
    folder = tmp_path_factory.mktemp("attacks")
    train, dev = generate_split("es", "train", 12, seed=3), generate_split("es", "dev", 12, seed=4)
    write_docbin(train, folder / "train.spacy")
    write_docbin(dev, folder / "dev.spacy")
    build_tiny_model(folder / "model", [n["text"] for n in train + dev])
    return folder / "model", folder / "train.spacy", folder / "dev.spacy"


def adapted(tiny, output, **kwargs):
    model, train, _ = tiny
    settings = dict(base_model=str(model), fraction=1.0, seq_len=64, batch_size=8, target_modules=ALL_LINEAR,
                    threads=1, silent=True, vocabulary="corpus", rank=16, alpha=32)
    settings.update(kwargs)
    adapt(train, output, **settings)
    return output


def test_roc_figures_on_known_scores():
    perfect = attack_figures([3, 4, 5], [0, 1, 2])
    assert perfect["auc"] == 1.0 and perfect["tpr_at_low_fpr"] == 1.0
    assert attack_figures([0, 1, 2], [3, 4, 5])["auc"] == 0.0
    ties = attack_figures([1, 1, 1], [1, 1])
    assert ties["auc"] == 0.5 and ties["tpr_at_low_fpr"] == 0.0
    # Against a plain pairwise count (Mann-Whitney, ties half).
    rng = random.Random(0)
    members, others = [rng.gauss(0.3, 1) for _ in range(60)], [rng.gauss(0, 1) for _ in range(50)]
    pairs = sum((m > o) + 0.5 * (m == o) for m in members for o in others) / (60 * 50)
    assert attack_figures(members, others)["auc"] == pytest.approx(pairs, abs=1e-4)
    fpr, tpr = roc_curve(members, others)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and all(a <= b for a, b in zip(fpr, fpr[1:]))
    with pytest.raises(ValueError, match="at least one member"):
        attack_figures([], [1.0])


def test_the_attack_finds_memorised_notes_and_not_an_unchanged_model(tiny, tmp_path):
    _, train, dev = tiny
    remembered = adapted(tiny, tmp_path / "memorised", max_steps=150, learning_rate=3e-2)
    figures = membership_inference(remembered, train, dev, max_notes=0, precision="fp32")
    assert figures["auc"] >= 0.9 and figures["members"] == figures["non_members"] == 12
    assert figures["mean_loss"]["members"]["adapted"] < figures["mean_loss"]["members"]["base"]
    assert len(figures["roc"]["fpr"]) == len(figures["roc"]["tpr"])
    # Learning rate 0: the adapter is the base model, every score is 0, the attack guesses.
    unchanged = adapted(tiny, tmp_path / "unchanged", max_steps=2, learning_rate=0.0)
    figures = membership_inference(unchanged, train, dev, max_notes=5, precision="fp32")
    assert figures["auc"] == 0.5 and figures["tpr_at_low_fpr"] == 0.0 and figures["members"] == 5
    assert "text" not in srsly.json_dumps(figures)


def test_canaries_are_made_up_planted_and_measured(tiny, tmp_path):
    _, train, _ = tiny
    planted = make_canaries(3, (1, 8), seed=0, lang="es")
    assert [c["repeats"] for c in planted] == [1, 1, 1, 8, 8, 8]
    assert len({c["name"] for c in planted}) == len({c["secret"] for c in planted}) == 6
    assert all(c["text"].startswith(c["prefix"]) and c["secret"] in c["text"] for c in planted)
    assert make_canaries(3, (1, 8), seed=0) == planted and make_canaries(3, (1, 8), seed=1) != planted
    mixed = with_canaries(["a", "b"], planted, seed=0)
    assert len(mixed) == 2 + 3 + 24 and {"a", "b"} <= set(mixed)
    with pytest.raises(CanaryError, match="repetition count"):
        make_canaries(2, (0, 4))
    # Planted by adapt: the file, the manifest, the restricted vocabulary holding their tokens.
    folder = adapted(tiny, tmp_path / "canary", max_steps=60, learning_rate=2e-2, canaries=3, canary_repeats=(1, 8))
    written = srsly.read_json(folder / "canaries.json")
    manifest = srsly.read_json(folder / "manifest.json")
    assert len(written) == 6 and manifest["canaries"]["documents_added"] == 27
    report = canary_exposure(folder, n_candidates=30, samples=[written[4]["name"] + " ingresa", "nada"],
                             precision="fp32")
    rows = {row["repeats"]: row for row in report["table"]}
    assert rows[1]["canaries"] == rows[8]["canaries"] == 3
    # Repeated 8 times in 12 notes' worth of text, the record numbers are memorised: ranked first.
    assert rows[8]["ranked_first"] == 3 and rows[8]["mean_exposure"] > rows[1]["mean_exposure"]
    assert report["reproduction"]["by_repeats"][8] == {"canaries": 3, "name_reproduced": 1, "secret_reproduced": 0}
    dumped = srsly.json_dumps(report)
    assert not any(c["name"] in dumped or c["secret"] in dumped for c in written)  # ids and figures only


def test_exposure_in_bits():
    assert exposure(0.5, [1.0] * 31)["exposure"] == 5.0  # preferred to all 31: log2(32)
    assert exposure(2.0, [1.0] * 31)["exposure"] == 0.0  # last of 32
    assert exposure(0.0, [1.0, 2.0, 3.0])["exposure_fit"] > exposure(0.9, [1.0, 2.0, 3.0])["exposure_fit"]
    assert canary_reproduction(["x 12345678 y"], [{"repeats": 1, "name": "Ab Cd", "secret": "12345678"}]) == {
        1: {"canaries": 1, "name_reproduced": 0, "secret_reproduced": 1}}
