"""Benchmark: tokens per second of vLLM (with the LoRA adapter) beside the project's sampler.

vLLM's CPU build needs transformers 5.x, so it runs in its own environment (`.venv-vllm`,
`scripts/setup_vllm.sh`). The project's environment cuts the prompts as `bench` does (the first
words of the first N dev notes, pseudonymized; seeds from `sample_seed`), times the project's
sampler on them, writes prompts, seeds and settings to a JSON file, and runs this module in
`.venv-vllm` on that file (`python -m deid_synthesis.generation.bench_vllm WORK.json OUT.json`,
torch-free project imports only). One after the other, so the two never share the cores.

vLLM also samples the same prompts and seeds without the adapter, and with it a second time:
if the LoRA is applied, outputs change with it and repeat without change at a fixed seed. Only
counts and timings are written, never generated text.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE

SRC = Path(__file__).resolve().parents[2]
ROOT = SRC.parent
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def rate(samples: List[Dict], seconds: float) -> Dict:
    """Samples, new tokens, seconds and new tokens per second (as `bench.rate`, without torch)."""
    tokens = sum(s["n_tokens"] for s in samples)
    return {"samples": len(samples), "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1)}


def bench_prompts(dev_path: Optional[Path], n_prompts: int, seed: int) -> Dict[str, list]:
    """Texts and seeds chosen as `bench.bench` chooses them (a small dev split is reused with new ids)."""
    from deid_synthesis.generation.samples import sample_seed

    if dev_path:
        from deid_synthesis.generation.prompts import make_prompts

        prompts = make_prompts(dev_path)[:n_prompts]
    else:
        prompts = [{"id": str(i), "text": t} for i, t in enumerate(["Paciente de 45", "Varón de 67 años", "Se remite a"])]
    while len(prompts) < n_prompts:
        prompts.append({"id": f"{prompts[len(prompts) % len(prompts)]['id']}+", "text": prompts[len(prompts) % len(prompts)]["text"]})
    return {"texts": [p["text"] for p in prompts], "seeds": [sample_seed(seed, p["id"], 0) for p in prompts]}


def time_project(texts: Sequence[str], seeds: Sequence[int], settings: Dict) -> Dict:
    """The project's sampler (`deid.CausalLM.v1`, backend hf) on the prompts, after a warm-up."""
    from deid_synthesis.generation.llm import make_causal_lm

    model = make_causal_lm(settings["base_model"], settings["adapter"], settings["cache_dir"], "hf", settings["dtype"],
                           "cpu", settings["threads"], settings["batch_size"], settings["max_new_tokens"],
                           settings["top_p"], settings["temperature"], None)
    model.sampler.generate(list(texts[:2]), list(seeds[:2]))  # warm-up
    start = time.perf_counter()
    samples = model.sampler.generate(list(texts), list(seeds))
    import torch

    return {**rate(samples, time.perf_counter() - start), "batch_size": settings["batch_size"],
            "threads": torch.get_num_threads(), "adapter_merged": True, "dtype": settings["dtype"]}


def time_vllm(work: Dict) -> Dict:
    """vLLM on the prompts with the adapter (timed), again with it and without it (the LoRA check)."""
    from deid_synthesis.generation.vllm_backend import VLLMSampler

    s, texts, seeds = work["settings"], work["texts"], work["seeds"]
    start = time.perf_counter()
    sampler = VLLMSampler(s["base_model"], s["adapter"], cache_dir=s["cache_dir"], top_p=s["top_p"],
                          temperature=s["temperature"], max_new_tokens=s["max_new_tokens"], dtype=s["dtype"],
                          max_model_len=s["max_model_len"])
    load_seconds = time.perf_counter() - start
    sampler.generate(texts[:2], seeds[:2])  # warm-up
    start = time.perf_counter()
    adapted = sampler.generate(texts, seeds)
    result = {**rate(adapted, time.perf_counter() - start), "device": sampler.device, "dtype": sampler.dtype,
              "load_seconds": round(load_seconds, 1), "lora": sampler.lora is not None,
              "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU")}}
    start = time.perf_counter()
    base = sampler.generate(texts, seeds, use_lora=False)
    result["without_adapter"] = rate(base, time.perf_counter() - start)
    again = sampler.generate(texts, seeds)
    result["lora_check"] = {
        "prompts": len(texts),
        "differ_without_adapter": sum(a["token_ids"] != b["token_ids"] for a, b in zip(adapted, base)),
        "same_when_repeated": sum(a["token_ids"] == b["token_ids"] for a, b in zip(adapted, again)),
    }
    return result


def sampler_commit() -> str:
    """The commit the project's sampler was measured at ("+dirty" when its files differ from it)."""
    files = ["src/deid_synthesis/generation/sampler.py", "src/deid_synthesis/generation/decoding.py"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# Long: one keyword option per setting of the command line (the body is about 30 lines).
def bench_vllm(
    dev_path: Optional[Path],
    base_model: str = DEFAULT_BASE,
    adapter: Optional[str] = None,
    n_prompts: int = 32,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    top_p: float = 0.95,
    temperature: float = 1.0,
    dtype: str = "float32",
    threads: int = 0,
    seed: int = 0,
    cache_dir: Path = DEFAULT_CACHE,
    vllm_python: Path = VLLM_PYTHON,
    skip_project: bool = False,
) -> Dict:
    """Tokens per second of the project's sampler (here) and of vLLM (in `vllm_python`), same prompts and settings.

    RETURNS (Dict): "project", "vllm" (with "without_adapter" and "lora_check"), "speedup", settings, load average.
    """
    if not Path(vllm_python).exists():
        raise FileNotFoundError(f"{vllm_python} is missing: run `bash scripts/setup_vllm.sh` (vLLM's CPU build)")
    settings = {"base_model": base_model, "adapter": str(adapter) if adapter else None, "max_new_tokens": max_new_tokens,
                "top_p": top_p, "temperature": temperature, "dtype": dtype, "cache_dir": str(cache_dir),
                "batch_size": batch_size, "threads": threads, "seed": seed, "max_model_len": 2048}
    work = {"settings": settings, **bench_prompts(dev_path, n_prompts, seed)}
    result = {**settings, "prompts": n_prompts, "cpus": os.cpu_count(), "load_average_before": os.getloadavg(),
              "sampler_commit": sampler_commit()}
    if not skip_project:
        result["project"] = time_project(work["texts"], work["seeds"], settings)
    with tempfile.TemporaryDirectory() as tmp:
        work_file, out_file, log = Path(tmp) / "work.json", Path(tmp) / "vllm.json", Path(tmp) / "vllm.log"
        work_file.write_text(json.dumps(work), encoding="utf8")
        env = {**os.environ, "PYTHONPATH": str(SRC), "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
        with open(log, "wb") as out:
            done = subprocess.run([str(vllm_python), "-m", "deid_synthesis.generation.bench_vllm", str(work_file),
                                   str(out_file)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"vLLM benchmark failed ({vllm_python}, exit {done.returncode}):\n{tail}")
        result["vllm"] = json.loads(out_file.read_text(encoding="utf8"))
    result["load_average_after"] = os.getloadavg()
    if "project" in result:
        result["speedup"] = round(result["vllm"]["tokens_per_second"] / result["project"]["tokens_per_second"], 2)
    return result


if __name__ == "__main__":  # the half that runs in .venv-vllm: WORK.json in, OUT.json out
    work_path, out_path = sys.argv[1:3]
    figures = time_vllm(json.loads(Path(work_path).read_text(encoding="utf8")))
    Path(out_path).write_text(json.dumps(figures, indent=2), encoding="utf8")
