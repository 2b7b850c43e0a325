"""Generation at scale, smoke-tested for real: vLLM's CPU build (`.venv-vllm`) in a Ray actor
(`ray_sampler.RaySampler`) draws the same samples as vLLM in one process, same prompts and seeds
(`scripts/smoke_ray_vllm.py`; about 3 minutes: two vLLM engines start on 2 cores)."""
import json
import os
import subprocess

from test_llm_server import ROOT, VLLM_PYTHON, require_vllm_env


def test_vllm_in_a_ray_actor_draws_the_samples_of_one_process(tmp_path):
    require_vllm_env()
    from deid_synthesis.generation.manifest import DEFAULT_CACHE
    from deid_synthesis.generation.packaged import resolve_base

    resolve_base("gemma3-270m", ROOT / DEFAULT_CACHE)  # prepared here, where the packaged weights are installed
    output = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    done = subprocess.run([str(VLLM_PYTHON), "-m", "scripts.smoke_ray_vllm", "--prompts", "6", "--actors", "1",
                           "--max-new-tokens", "16", "--output", str(output)], cwd=ROOT, env=env,
                          capture_output=True, timeout=1200)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = json.loads(output.read_text())
    assert result["same_samples"] == result["prompts"] == 6
    assert result["ray_tokens_per_second"] > 0 and result["local_tokens_per_second"] > 0
