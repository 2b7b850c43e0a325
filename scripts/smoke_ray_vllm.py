"""Smoke run of generation at scale: vLLM (with the LoRA adapter) in Ray actors against vLLM in this
process, same prompts, seeds and settings: the same samples, and the tokens/s of each, in one run.

Runs in vLLM's own environment (`bash scripts/setup_vllm.sh` makes `.venv-vllm`, Ray included);
only torch-free project modules are imported, so spaCy is not needed there:

    PYTHONPATH=src .venv-vllm/bin/python -m scripts.smoke_ray_vllm --adapter training/meddocan/adapter-bench \
        --prompts 16 --actors 1 --output metrics/meddocan/smoke_ray_vllm.json

On a GPU cluster the same `RaySampler` runs through `generate` (docs/scale_out.md). Only counts,
timings and whether the texts agree are printed, never text.
"""
import functools
import json
import os
import time
from pathlib import Path
from typing import Optional

import typer

from deid_synthesis.generation.manifest import DEFAULT_CACHE
from deid_synthesis.generation.ray_sampler import RaySampler
from deid_synthesis.generation.vllm_backend import VLLMSampler

PROMPTS = ["Paciente de 45 años", "Varón de 67 años que", "Se remite a la consulta", "Mujer de 30 años con",
           "Antecedentes personales:", "Exploración física:", "Informe de alta", "Motivo de consulta:"]


def timed(sampler, prompts, seeds):
    """(samples, seconds) of one generate call."""
    start = time.perf_counter()
    samples = sampler.generate(prompts, seeds)
    return samples, time.perf_counter() - start


def main(
    base_model: str = typer.Option("gemma3-270m", "--base-model"),
    adapter: Optional[str] = typer.Option(None, "--adapter", help="LoRA adapter folder (scripts.adapt)"),
    n_prompts: int = typer.Option(16, "--prompts"),
    actors: int = typer.Option(1, "--actors", help="Ray actors, each with its own vLLM engine"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    output: Optional[Path] = typer.Option(None, "--output"),
):
    """vLLM in Ray actors vs vLLM in this process: same samples? tokens/s of each."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n_prompts)]
    seeds = [1000 + i for i in range(n_prompts)]
    build = functools.partial(VLLMSampler, base_model, adapter, cache_dir=str(DEFAULT_CACHE),
                              max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    on_ray = RaySampler(build, actors, base_model, str(DEFAULT_CACHE), cpus=1)
    ray_start = time.perf_counter() - start
    ray_samples, ray_seconds = timed(on_ray, prompts, seeds)
    on_ray.close()
    local = build()
    local_samples, local_seconds = timed(local, prompts, seeds)
    tokens = sum(s["n_tokens"] for s in ray_samples)
    result = {
        "base_model": base_model, "adapter": adapter, "prompts": n_prompts, "actors": actors,
        "max_new_tokens": max_new_tokens, "ray_start_seconds": round(ray_start, 1),
        "ray_tokens_per_second": round(tokens / ray_seconds, 1),
        "local_tokens_per_second": round(sum(s["n_tokens"] for s in local_samples) / local_seconds, 1),
        "same_samples": sum(a["token_ids"] == b["token_ids"] for a, b in zip(ray_samples, local_samples)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
