"""Project step `bench-vllm`: tokens per second of vLLM's CPU build with the LoRA adapter beside the
project's sampler, same prompts, seeds and settings, in one run (`deid_synthesis.generation.bench_vllm`).
Runs in the project's .venv; the vLLM half runs in .venv-vllm (`bash scripts/setup_vllm.sh`).
"""
from pathlib import Path
from typing import Optional

import srsly
import typer
from wasabi import msg

from clinical_deid.io import atomic_open
from deid_synthesis.generation.bench_vllm import VLLM_PYTHON, bench_vllm
from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE


def main(
    dev_path: Optional[Path] = typer.Argument(None, exists=True, dir_okay=False, help="Dev DocBin for the prompts (default: three fixed prompts)"),
    base_model: str = typer.Option(DEFAULT_BASE, "--base-model", "-m", help="Hub name, local folder or gemma3-270m"),
    adapter: Optional[str] = typer.Option(None, "--adapter", help="Adapter folder from scripts.adapt"),
    n_prompts: int = typer.Option(32, "--prompts", help="Prompts (one sample each)"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="New tokens per sample"),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch size of the project's sampler"),
    top_p: float = typer.Option(0.95, "--top-p"),
    temperature: float = typer.Option(1.0, "--temperature"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16 (both paths)"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads of the project's sampler (0: default)"),
    seed: int = typer.Option(0, "--seed"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir"),
    vllm_python: Path = typer.Option(VLLM_PYTHON, "--vllm-python", help="Python of the environment with vLLM"),
    output: Optional[Path] = typer.Option(None, "--output", help="Write the figures as JSON"),
):
    """Tokens per second: vLLM (LoRA applied by vLLM) vs the project's sampler (LoRA merged)."""
    try:
        result = bench_vllm(dev_path, base_model, adapter, n_prompts, max_new_tokens, batch_size, top_p, temperature,
                            dtype, threads, seed, cache_dir, vllm_python)
    except (FileNotFoundError, RuntimeError) as err:
        msg.fail(str(err), exits=1)
    project, vllm, check = result["project"], result["vllm"], result["vllm"]["lora_check"]
    msg.info(f"project sampler ({result['sampler_commit']}, {project['threads']} threads): "
             f"{project['tokens_per_second']} tokens/s ({project['tokens']} tokens, {project['seconds']} s)")
    msg.info(f"vLLM {vllm['device']} {vllm['dtype']} with the adapter: {vllm['tokens_per_second']} tokens/s "
             f"({vllm['tokens']} tokens, {vllm['seconds']} s); without it {vllm['without_adapter']['tokens_per_second']}")
    msg.info(f"LoRA check: {check['differ_without_adapter']} of {check['prompts']} samples differ without the adapter, "
             f"{check['same_when_repeated']} repeat exactly with it")
    msg.good(f"vLLM / project: {result['speedup']}x (load average {result['load_average_before'][0]:.1f} before, "
             f"{result['load_average_after'][0]:.1f} after)")
    if output:
        with atomic_open(output) as handle:
            handle.write(srsly.json_dumps(result, indent=2))
        msg.good(f"Figures → {output}")


if __name__ == "__main__":
    typer.run(main)
