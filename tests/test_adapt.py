"""LoRA adaptation on a tiny, randomly initialised Gemma-style LM (built offline from demo notes)."""
import pytest
import spacy
import srsly
import torch
from spacy.tokens import DocBin

from peft import LoraConfig, get_peft_model

from deid_synthesis.corpus.demo import generate_split
from deid_synthesis.generation.adapt import (AdaptError, adapt, cpu_has_bf16, read_texts, resolve_precision,
                                             select_documents)
from deid_synthesis.generation.causal_lm import load_causal_lm
from deid_synthesis.generation.lora import lm_loss, make_blocks
from deid_synthesis.generation.manifest import ModelLoadError
from deid_synthesis.generation.tiny_model import build_tiny_model

ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model folder, train DocBin) from 30 demo notes."""
    folder = tmp_path_factory.mktemp("tiny")
    notes = generate_split("es", "train", 30, seed=0)
    nlp = spacy.blank("es")
    docbin = DocBin(store_user_data=True)
    for note in notes:
        doc = nlp.make_doc(note["text"])
        doc.user_data["id"] = note["id"]
        docbin.add(doc)
    docbin.to_disk(folder / "train.spacy")
    build_tiny_model(folder / "model", [n["text"] for n in notes])
    return folder / "model", folder / "train.spacy"


def run(tiny, output, **kwargs):
    model, train = tiny
    settings = dict(base_model=str(model), fraction=1.0, max_steps=12, seq_len=64, batch_size=8, learning_rate=1e-2,
                    target_modules=ALL_LINEAR, threads=1, silent=True)
    settings.update(kwargs)
    return adapt(train, output, **settings)


def mean_loss(model, blocks) -> float:
    with torch.no_grad():
        return model(**blocks).loss.item()


def test_fraction_picks_the_same_documents_for_a_seed():
    assert select_documents(100, 0.25, seed=0) == select_documents(100, 0.25, seed=0)
    assert select_documents(100, 0.25, seed=0) != select_documents(100, 0.25, seed=1)
    assert len(select_documents(100, 0.05, seed=0)) == 5
    # A smaller fraction is a subset of a larger one with the same seed.
    assert set(select_documents(100, 0.05, seed=3)) <= set(select_documents(100, 0.5, seed=3))
    assert select_documents(100, 0.0, seed=0) == []
    assert len(select_documents(3, 0.05, seed=0)) == 1  # never zero documents for a positive fraction
    with pytest.raises(AdaptError):
        select_documents(10, 1.5, seed=0)


def test_lora_lowers_the_loss(tiny, tmp_path):
    manifest = run(tiny, tmp_path / "adapter")
    model_path, train = tiny
    base, tokenizer = load_causal_lm(str(model_path))
    blocks = make_blocks(tokenizer, [d["text"] for d in read_texts(train)], 64)
    adapted, _ = load_causal_lm(str(model_path), tmp_path / "adapter")
    assert mean_loss(adapted, blocks) < mean_loss(base, blocks) - 0.05
    assert len(manifest["loss_curve"]) == manifest["steps"] == 12
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_corpus_vocabulary_loss_in_bfloat16_lowers_the_loss(tiny, tmp_path):
    manifest = run(tiny, tmp_path / "adapter", vocabulary="corpus", bf16=True)
    assert manifest["hyperparameters"]["vocabulary"] == "corpus" and manifest["hyperparameters"]["bf16"]
    model_path, train = tiny
    token_ids = srsly.read_json(tmp_path / "adapter" / "token_ids.json")
    loss = lm_loss(token_ids, torch.device("cpu"))
    base, tokenizer = load_causal_lm(str(model_path))
    blocks = make_blocks(tokenizer, [d["text"] for d in read_texts(train)], 64)
    adapted, _ = load_causal_lm(str(model_path), tmp_path / "adapter", merge=False)
    with torch.no_grad():
        assert loss(adapted, blocks).item() < loss(get_peft_model(base, LoraConfig(target_modules=["q_proj"])), blocks).item() - 0.05


def test_chunked_loss_equals_the_models_own(tiny):
    model, tokenizer = load_causal_lm(str(tiny[0]))
    blocks = make_blocks(tokenizer, [d["text"] for d in read_texts(tiny[1])][:4], 64)
    peft_model = get_peft_model(model, LoraConfig(target_modules=["q_proj"]))
    with torch.no_grad():
        assert lm_loss(None, torch.device("cpu"), chunk=50)(peft_model, blocks).item() == pytest.approx(
            peft_model(**blocks).loss.item(), rel=1e-5)


def test_manifest_records_the_run(tiny, tmp_path):
    first = run(tiny, tmp_path / "a", fraction=0.5, max_steps=1, seed=7)
    second = run(tiny, tmp_path / "b", fraction=0.5, max_steps=1, seed=7)
    other = run(tiny, tmp_path / "c", fraction=0.5, max_steps=1, seed=8)
    assert first["documents_hash"] == second["documents_hash"] != other["documents_hash"]
    saved = srsly.read_json(tmp_path / "a" / "manifest.json")
    assert saved["n_documents"] == 15 and saved["n_documents_total"] == 30 and saved["fraction"] == 0.5
    assert saved["base_model"] == str(tiny[0])
    assert saved["hyperparameters"]["rank"] == 8 and saved["hyperparameters"]["alpha"] == 32
    assert saved["quantization"] == "none" and saved["seconds"] > 0
    token_ids = srsly.read_json(tmp_path / "a" / "token_ids.json")
    assert token_ids and all(isinstance(i, int) for i in token_ids)


def test_fraction_zero_means_the_base_model(tiny, tmp_path):
    manifest = run(tiny, tmp_path / "zero", fraction=0.0)
    assert manifest["adapter"] is False and manifest["n_documents"] == 0
    assert not (tmp_path / "zero" / "adapter_config.json").exists()
    assert srsly.read_json(tmp_path / "zero" / "token_ids.json") == []
    model, _ = load_causal_lm(str(tiny[0]), tmp_path / "zero")  # loads as the plain base model
    assert model.__class__.__name__ == "Gemma3ForCausalLM"


def test_errors_name_the_file(tiny, tmp_path):
    with pytest.raises(AdaptError, match="missing.spacy"):
        adapt(tmp_path / "missing.spacy", tmp_path / "out", base_model=str(tiny[0]), silent=True)
    (tmp_path / "bad.spacy").write_text("not a docbin")
    with pytest.raises(AdaptError, match="bad.spacy"):
        adapt(tmp_path / "bad.spacy", tmp_path / "out", base_model=str(tiny[0]), silent=True)
    with pytest.raises(ModelLoadError, match="manifest.json"):
        load_causal_lm(str(tiny[0]), tmp_path)  # a folder that is no adapter


def test_an_adapter_is_refused_on_another_base_model(tiny, tmp_path):
    run(tiny, tmp_path / "adapter", max_steps=1)
    other = build_tiny_model(tmp_path / "other", ["Otro texto de prueba."] * 5, vocab_size=60)
    with pytest.raises(ModelLoadError, match="trained on"):
        load_causal_lm(str(other), tmp_path / "adapter")


@pytest.mark.parametrize("flags, expected", [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu sse avx2 avx512f", False)])
def test_cpu_bf16_from_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
    assert cpu_has_bf16(cpuinfo) is expected
    assert cpu_has_bf16(tmp_path / "missing") is False


def test_precision_auto_follows_the_cpu(monkeypatch):
    import deid_synthesis.generation.adapt as adapt_module

    assert resolve_precision("fp32") is False and resolve_precision("bf16") is True
    for has_bf16 in (True, False):
        monkeypatch.setattr(adapt_module, "cpu_has_bf16", lambda: has_bf16)
        assert resolve_precision("auto") is has_bf16
    with pytest.raises(AdaptError, match="unknown precision 'fp16': use fp32, bf16, auto"):
        resolve_precision("fp16")
