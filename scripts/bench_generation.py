"""Project step `bench-generation`: tokens per second of transformers' `generate` and of the
project's sampler (float32 output layer, and the fast exact path: bfloat16 output layer with
float32 rescoring), same prompts and settings, in one run (`deid_synthesis.generation.bench`).
"""
from pathlib import Path
from typing import Optional

import srsly
import typer
from wasabi import msg

from clinical_deid.io import atomic_open
from deid_synthesis.generation.bench import bench
from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE


def main(
    dev_path: Optional[Path] = typer.Argument(None, exists=True, dir_okay=False, help="Dev DocBin for the prompts (default: three fixed prompts)"),
    base_model: str = typer.Option(DEFAULT_BASE, "--base-model", "-m", help="Hub name, local folder or gemma3-270m"),
    adapter: Optional[str] = typer.Option(None, "--adapter", help="Adapter folder from scripts.adapt"),
    n_prompts: int = typer.Option(32, "--prompts", help="Prompts for the project's path"),
    naive_prompts: int = typer.Option(4, "--naive-prompts", help="The first N prompts for the naive path (0: skip it)"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="New tokens per sample"),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch size of the project's path"),
    top_p: float = typer.Option(0.95, "--top-p"),
    temperature: float = typer.Option(1.0, "--temperature"),
    vocabulary: Optional[str] = typer.Option(None, "--vocabulary", help="token_ids.json: restricted output layer"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16 (project's path)"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: default)"),
    seed: int = typer.Option(0, "--seed"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir"),
    profile: bool = typer.Option(False, "--profile", help="Also time the parts of one decoding step"),
    output: Optional[Path] = typer.Option(None, "--output", help="Write the figures as JSON"),
    head_dtype: str = typer.Option("bfloat16", "--head-dtype", help="Output layer of the fast path (float32 or bfloat16)"),
    fast_batch_size: int = typer.Option(0, "--fast-batch-size", help="Batch size of the fast path (0: --batch-size)"),
):
    """Tokens per second: naive `generate` (batch 1, unmerged adapter), the project's float32 path and its fast path."""
    result = bench(dev_path, base_model, adapter, n_prompts, naive_prompts, max_new_tokens, batch_size, top_p,
                   temperature, vocabulary, dtype, threads, seed, cache_dir, profile, False, head_dtype,
                   fast_batch_size)
    if output:
        with atomic_open(output) as handle:
            handle.write(srsly.json_dumps(result, indent=2))
        msg.good(f"Figures → {output}")


if __name__ == "__main__":
    typer.run(main)
