"""The fast output layer (bfloat16 + exact rescoring) samples from the float32 path's distribution.

`decoding.nucleus_probs` gives the nucleus distribution each path draws from (same code as
`nucleus_sample`), so the total variation distance between the paths is computed, not
estimated. A plain bfloat16 head and a float32 head perturbed by 1% both fail the bound
the fast path passes.
"""
from types import SimpleNamespace

import pytest
import spacy
import torch

from deid_synthesis.generation.decoding import nucleus_probs, nucleus_sample
from deid_synthesis.generation.sampler import BatchedSampler
from deid_synthesis.generation.tiny_model import build_tiny_model

TOP_P = 0.95
# Total variation distance per step allowed between the fast and the float32 path: what is
# left is the normaliser's tail (approximate logits outside the candidates) and float32
# rounding. A plain bfloat16 head is ~1e-2 here (~2e-2 measured on Gemma-3-270m).
FAST_BOUND = 1e-4


def wide_model(vocab: int = 40000, hidden: int = 64, seed: int = 0):
    """A 2-layer Gemma-3 with a 40k-row output layer whose rows have norm ~1, as Gemma-3-270m's."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=16,
                              layer_types=["full_attention"], pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0, hidden ** -0.5)
    return model


def sampler(model, **options):
    return BatchedSampler(model, SimpleNamespace(eos_token_id=1), top_p=TOP_P, **options)


def hidden_states(seed: int = 1, norms=(20.0, 40.0, 80.0, 150.0, 215.0)):
    """Hidden states of Gemma-3-270m's sizes (|h| up to ~215): flat to peaked next-token distributions."""
    torch.manual_seed(seed)
    h = torch.randn(len(norms), 64)
    return h / h.norm(dim=-1, keepdim=True) * torch.tensor(norms).unsqueeze(-1)


def distributions(sampler, hidden: torch.Tensor) -> torch.Tensor:
    """The nucleus distributions the sampler draws from for these hidden states."""
    return nucleus_probs(*sampler._nucleus_inputs(hidden)[:1], TOP_P, *sampler._nucleus_inputs(hidden)[1:])


def reference(logits: torch.Tensor) -> torch.Tensor:
    """The nucleus by a full sort in float64: the definition every path must match."""
    probs = torch.softmax(logits.double(), -1)
    values, order = probs.sort(-1, descending=True)
    keep = (values.cumsum(-1) - values) < TOP_P
    keep[:, 0] = True
    values = torch.where(keep, values, torch.zeros_like(values))
    return torch.zeros_like(probs).scatter_(-1, order, values / values.sum(-1, keepdim=True))


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p - q).abs().sum(-1) / 2


@pytest.fixture(scope="module")
def model():
    return wide_model()


@torch.inference_mode()
def test_fast_head_matches_float32(model):
    exact, fast = sampler(model), sampler(model, head_dtype="bfloat16")
    assert fast.head_fast is not None and fast.head_fast.dtype == torch.bfloat16
    hidden = hidden_states()
    expected = reference(hidden @ exact.head_weight.T)
    float32, bfloat16 = distributions(exact, hidden), distributions(fast, hidden)
    assert (total_variation(float32, expected) < 1e-5).all()  # the batched float32 nucleus is exact
    assert (total_variation(bfloat16, float32) < FAST_BOUND).all(), total_variation(bfloat16, float32)
    sizes = (float32 > 0).sum(-1)
    assert sizes.min() < 10 and sizes.max() > 1000  # peaked and flat rows
    # the nucleus sets agree except at boundary ties (at most one token per row)
    assert (((bfloat16 > 0) != (float32 > 0)).sum(-1) <= 1).all()
    # draws with the same uniforms: the same tokens nearly always
    repeated = hidden.repeat_interleave(100, dim=0)
    uniforms = torch.rand(len(repeated), generator=torch.Generator().manual_seed(0))
    assert float((exact._sample(repeated, uniforms) == fast._sample(repeated, uniforms)).float().mean()) > 0.99


@torch.inference_mode()
def test_bound_catches_a_plain_bfloat16_head_and_a_perturbed_head(model):
    """The check can fail: without rescoring, or with a head 1% off, the distance exceeds the bound."""
    exact, fast = sampler(model), sampler(model, head_dtype="bfloat16")
    perturbed = sampler(wide_model())
    with torch.no_grad():
        perturbed.head_weight.mul_(1 + 0.01 * torch.randn_like(perturbed.head_weight))
    hidden = hidden_states()
    float32 = distributions(exact, hidden)
    plain = nucleus_probs(fast._logits(hidden, fast=True).float(), TOP_P)
    assert total_variation(plain, float32).max() > 10 * FAST_BOUND
    assert total_variation(distributions(perturbed, hidden), float32).max() > 10 * FAST_BOUND


@torch.inference_mode()
def test_error_bound_holds(model):
    fast = sampler(model, head_dtype="bfloat16")
    hidden = hidden_states()
    approx = fast._logits(hidden, fast=True)
    error = (approx.float() - hidden @ fast.head_weight.T).abs().amax(-1)
    bound = fast._fast_error(hidden, approx)
    assert (error <= bound).all() and (error > 0).any()


def test_nucleus_candidates_and_fallback_are_exact():
    """Candidates above a floor (1e-4, lowered when they hold less than p) against the full sort.

    Row 0 is peaked (the first floor suffices), row 1 nearly flat over 300k tokens (every
    floor down to 0, the full row), row 2 in between; with `rescore`, noisy logits within
    the stated error are corrected, including in the fallback rounds.
    """
    torch.manual_seed(0)
    vocab = 300_000
    exact = torch.randn(3, vocab) * torch.tensor([[6.0], [0.01], [2.0]])
    approx = exact + (torch.rand(3, vocab) - 0.5) * 0.2  # |error| <= 0.1
    expected = reference(exact)
    calls = []

    def rescorer(row):
        def rescore(rows, columns):
            calls.append(len(columns))
            return exact[row : row + 1][rows][:, columns]
        return rescore

    assert (total_variation(nucleus_probs(exact, TOP_P), expected) < 1e-5).all()
    for row in range(3):
        calls.clear()
        found = nucleus_probs(approx[row : row + 1], TOP_P, rescorer(row), torch.full((1,), 0.1))
        assert float(total_variation(found, expected[row : row + 1])) < FAST_BOUND  # the tail: noisy logits
        if row == 0:
            assert len(calls) == 1 and calls[0] < 1000  # the first floor held the nucleus
        else:
            assert len(calls) > 1  # lowered floors
    assert calls[-1] < vocab  # row 2 did not need the full row
    calls.clear()
    nucleus_probs(approx[1:2], TOP_P, rescorer(1), torch.full((1,), 0.1))
    assert calls[-1] == vocab  # row 1 did
    # draws: the peaked row's tokens are the reference's for the same uniforms
    uniforms = torch.rand(200)
    drawn = nucleus_sample(approx[0].expand(200, -1), TOP_P, uniforms, lambda r, c: exact[0][c].expand(len(r), -1),
                           torch.full((200,), 0.1))
    values, order = expected[0].sort(descending=True)
    choice = torch.searchsorted(values.cumsum(0), uniforms.double()).clamp(max=int((values > 0).sum()) - 1)
    assert (drawn == order[choice]).float().mean() > 0.99


@torch.inference_mode()
def test_fast_path_generates_the_same_tokens(tmp_path):
    """Same seeds, same prompts: the bfloat16 head with rescoring gives the float32 path's tokens almost always."""
    texts = [f"Paciente de {40 + i} años con dolor torácico y fiebre de {i} días." for i in range(30)]
    folder = build_tiny_model(tmp_path / "model", texts)
    from deid_synthesis.generation.causal_lm import load_causal_lm

    model, tokenizer = load_causal_lm(str(folder))
    with torch.no_grad():  # Gemma-3-270m's scale: peaked distributions, where bfloat16 rounding matters
        model.get_output_embeddings().weight.mul_(40)
    prompts, seeds = ["Paciente de", "Varón de 67", "Se remite a", "Mujer de"] * 4, list(range(16))
    options = dict(max_new_tokens=40, batch_size=8)
    exact = BatchedSampler(model, tokenizer, **options).generate(prompts, seeds)
    fast = BatchedSampler(model, tokenizer, head_dtype="bfloat16", **options).generate(prompts, seeds)
    same = sum(a["token_ids"] == b["token_ids"] for a, b in zip(exact, fast))
    assert same >= 14, same
    assert sum(s["n_tokens"] for s in exact) > 100
    with pytest.raises(ValueError):
        BatchedSampler(model, tokenizer, head_dtype="int4")


def test_config_option(tmp_path):
    """`head_dtype` is an option of deid.CausalLM.v1 in configs/generate.cfg."""
    from pathlib import Path

    config = spacy.util.load_config(Path(__file__).resolve().parent.parent / "configs" / "generate.cfg")
    assert config["components"]["llm"]["model"]["head_dtype"] in ("float32", "bfloat16")
