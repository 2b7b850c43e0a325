"""Benchmark: new tokens per second of the naive path, the project's float32 path and its fast path, in one run.

Naive: transformers' `generate` with nucleus sampling, one prompt at a time, the adapter
not merged (peft's wrapper around every adapted layer). Project: `deid.CausalLM.v1` with the
same model, adapter, prompts and sampling settings (batched, adapter merged, and whatever
`--vocabulary` / `--dtype` ask for), float32 output layer. Fast: the same sampler with
`head_dtype` (default bfloat16: the output layer in bfloat16, nucleus candidates rescored
in float32; same distribution) and `--fast-batch-size`. The naive path is slow, so it
runs on the first `--naive-prompts` of the prompts only (0: skipped); tokens per second is
a rate, so the figures compare. Each timing records the load average beside it (the
machine may be shared). `--profile` also prints where one decoding step of the project's
paths spends its time. Only counts and timings are printed, never generated text.

    python -m scripts.bench_generation corpus/meddocan/dev.spacy --adapter training/meddocan/adapter-1.0 \
        --vocabulary training/meddocan/adapter-1.0/token_ids.json --output metrics/meddocan/bench_generation.json
"""
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from wasabi import msg

from deid_synthesis.generation.causal_lm import load_causal_lm
from deid_synthesis.generation.decoding import ATTENTION, make_cache, nucleus_sample, register_attention
from deid_synthesis.generation.llm import make_causal_lm
from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE
from deid_synthesis.generation.prompts import make_prompts
from deid_synthesis.generation.sampler import BatchedSampler, naive_generate
from deid_synthesis.generation.samples import sample_seed


def rate(samples: List[Dict], seconds: float) -> Dict:
    """Samples, new tokens, seconds and new tokens per second of one path."""
    tokens = sum(s["n_tokens"] for s in samples)
    return {"samples": len(samples), "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1)}


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages: a timing on a shared machine means little without them."""
    return [round(x, 2) for x in os.getloadavg()]


def timed(sampler, texts: List[str], seeds: List[int]):
    """(samples, figures) of one sampler on the prompts, after a short warm-up, with the load before and after."""
    sampler.generate(texts[:2], seeds[:2])
    before, start = load_average(), time.perf_counter()
    samples = sampler.generate(texts, seeds)
    figures = rate(samples, time.perf_counter() - start)
    figures.update({"batch_size": sampler.batch_size, "load_before": before, "load_after": load_average()})
    return samples, figures


@torch.inference_mode()
def profile_step(sampler, prompts: List[str], repeats: int = 3) -> Dict[str, float]:
    """Milliseconds per decoding step, by part: transformer body, output layer, nucleus sampling.

    Measured after the prompts and the sampler's continuations of them (16 tokens) are
    in the cache, so the output distribution, and the size of the
    nucleus, is a realistic one.
    """
    config, tokenizer = sampler.model.config, sampler.tokenizer
    # Continue the prompts by a few sampled tokens, so that the context is the model's own text.
    kept, sampler.max_new_tokens = sampler.max_new_tokens, 16
    texts = [s["text"] for s in sampler.generate(prompts, list(range(len(prompts))))]
    sampler.max_new_tokens = kept
    previous = config._attn_implementation
    if sampler.use_grouped_attention:
        register_attention()
        config._attn_implementation = ATTENTION
    try:
        tokenizer.padding_side = "left"
        enc = tokenizer(texts, return_tensors="pt", padding=True)
        ids, mask = enc.input_ids, enc.attention_mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = make_cache(ids.shape[1] + repeats + 1)
        hidden = sampler.backbone(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                  use_cache=True).last_hidden_state[:, -1]
        step = sampler._logits(hidden).argmax(-1, keepdim=True)
        if sampler.token_ids is not None:
            step = sampler.token_ids[step]
        timings = {}
        start = time.perf_counter()
        for i in range(repeats):
            mask = torch.cat([mask, mask.new_ones(len(ids), 1)], dim=1)
            positions = positions[:, -1:] + 1
            sampler.backbone(input_ids=step, attention_mask=sampler._step_masks(mask), position_ids=positions,
                             past_key_values=cache, use_cache=True)
        timings["body_ms"] = (time.perf_counter() - start) / repeats * 1000
        start = time.perf_counter()
        for _ in range(repeats):
            inputs = sampler._nucleus_inputs(hidden)
        timings["output_layer_ms"] = (time.perf_counter() - start) / repeats * 1000
        uniforms = torch.rand(len(ids))
        start = time.perf_counter()
        for _ in range(repeats):
            nucleus_sample(inputs[0], sampler.top_p, uniforms, *inputs[1:])
        timings["sampling_ms"] = (time.perf_counter() - start) / repeats * 1000
        timings["output_rows"] = int(inputs[0].shape[-1])
        timings["batch_size"] = len(ids)
        # What this machine allows at this batch shape with no sampling at all: body and output layer only.
        timings["ceiling_tokens_per_second"] = len(ids) * 1000 / (timings["body_ms"] + timings["output_layer_ms"])
    finally:
        config._attn_implementation = previous
    timings["load"] = load_average()
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in timings.items()}


# Long: 18 keyword options, one a flag of its command line (the body is about 50 lines).
def bench(
    dev_path: Optional[Path],
    base_model: str = DEFAULT_BASE,
    adapter: Optional[str] = None,
    n_prompts: int = 32,
    naive_prompts: int = 4,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    top_p: float = 0.95,
    temperature: float = 1.0,
    vocabulary: Optional[str] = None,
    dtype: str = "float32",
    threads: int = 0,
    seed: int = 0,
    cache_dir: Path = DEFAULT_CACHE,
    profile: bool = False,
    silent: bool = False,
    head_dtype: str = "bfloat16",
    fast_batch_size: int = 0,
) -> Dict:
    """Tokens per second of the three paths on the same prompts and settings (options as the CLI names them).

    dev_path (Optional[Path]): dev DocBin for the prompts (None: three fixed prompts).
    n_prompts (int): prompts for the project's paths; naive_prompts (int): the first N for the naive path (0: none).
    head_dtype (str): the fast path's output layer; fast_batch_size (int): its batch size (0: batch_size).
    profile (bool): also time the parts of one decoding step.
    RETURNS (Dict): the figures ("naive", "project", "fast", the ratios, and "profile").
    """
    if threads:
        torch.set_num_threads(threads)
    if dev_path:
        prompts = make_prompts(dev_path)[:n_prompts]
    else:
        prompts = [{"id": str(i), "text": t} for i, t in enumerate(["Paciente de 45", "Varón de 67 años", "Se remite a"])]
    while len(prompts) < n_prompts:  # a small dev split: reuse prompts with other ids
        prompts.append({"id": f"{prompts[len(prompts) % len(prompts)]['id']}+", "text": prompts[len(prompts) % len(prompts)]["text"]})
    texts = [p["text"] for p in prompts]
    seeds = [sample_seed(seed, p["id"], 0) for p in prompts]
    result = {"base_model": base_model, "adapter": adapter, "max_new_tokens": max_new_tokens, "top_p": top_p,
              "temperature": temperature, "threads": torch.get_num_threads(), "prompts": len(prompts)}
    say = (lambda text: None) if silent else msg.info
    if naive_prompts:
        result["naive"] = naive_rate(base_model, adapter, cache_dir, texts[:naive_prompts], seeds[:naive_prompts],
                                     top_p, temperature, max_new_tokens)
        say(f"naive: {result['naive']['tokens_per_second']} tokens/s (load {result['naive']['load_after']})")

    project = make_causal_lm(base_model, adapter, str(cache_dir), "hf", dtype, "cpu", 0, batch_size,
                             max_new_tokens, top_p, temperature, vocabulary, "float32")
    sampler = project.sampler
    samples, result["project"] = timed(sampler, texts, seeds)
    result["project"].update({"adapter_merged": True, "dtype": dtype, "head_dtype": "float32", "vocabulary": vocabulary,
                              "vocabulary_size": project.settings.get("vocabulary_size")})
    say(f"project, float32 output layer: {result['project']['tokens_per_second']} tokens/s "
        f"(load {result['project']['load_before']} -> {result['project']['load_after']})")
    token_ids = None if sampler.token_ids is None else sampler.token_ids.tolist()
    fast = BatchedSampler(sampler.model, sampler.tokenizer, top_p=top_p, temperature=temperature,
                          max_new_tokens=max_new_tokens, batch_size=fast_batch_size or batch_size, token_ids=token_ids,
                          head_dtype=head_dtype)
    fast_samples, result["fast"] = timed(fast, texts, seeds)
    result["fast"].update({"dtype": dtype, "head_dtype": head_dtype, "vocabulary": vocabulary})
    # Not a test (the paths round differently), a sanity figure: same seeds, how often the very same tokens.
    result["fast"]["same_samples"] = sum(a["token_ids"] == b["token_ids"] for a, b in zip(samples, fast_samples))
    result["fast_speedup"] = round(result["fast"]["tokens_per_second"] / result["project"]["tokens_per_second"], 2)
    if naive_prompts:
        result["speedup"] = round(result["project"]["tokens_per_second"] / result["naive"]["tokens_per_second"], 1)
    if profile:
        result["profile"] = {name: profile_step(s, texts[: s.batch_size]) for name, s in (("project", sampler),
                                                                                          ("fast", fast))}
    if not silent:
        msg.good(f"float32 exact {result['project']['tokens_per_second']} tokens/s, {head_dtype} head exact "
                 f"{result['fast']['tokens_per_second']} tokens/s: {result['fast_speedup']}x "
                 f"({torch.get_num_threads()} threads, load {load_average()})")
        if profile:
            msg.info(f"one decoding step: {result['profile']}")
    return result


def naive_rate(base_model, adapter, cache_dir, texts, seeds, top_p, temperature, max_new_tokens) -> Dict:
    """The naive path's figures: transformers' generate, batch 1, the adapter not merged."""
    model, tokenizer = load_causal_lm(base_model, adapter, cache_dir=cache_dir, merge=False)
    naive_generate(model, tokenizer, texts[:1], seeds[:1], top_p=top_p, temperature=temperature, max_new_tokens=4)
    before, start = load_average(), time.perf_counter()
    samples = naive_generate(model, tokenizer, texts, seeds, top_p=top_p, temperature=temperature,
                             max_new_tokens=max_new_tokens)
    figures = rate(samples, time.perf_counter() - start)
    figures.update({"batch_size": 1, "adapter_merged": False, "vocabulary": None, "load_before": before,
                    "load_after": load_average()})
    return figures
