"""Project step `adapt`: train a LoRA adapter on a fraction of the gold training notes.

The logic is `deid_synthesis.generation.adapt` (needs the `generation` extra: torch, peft).
"""
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from deid_synthesis.generation.adapt import (DEFAULT_LEARNING_RATE, DEFAULT_TARGETS, adapt,
                                            resolve_precision)
from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE


def parse_repeats(value: str) -> List[int]:
    """"1,4,16" -> [1, 4, 16]; a clear error for anything else."""
    try:
        repeats = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        repeats = []
    if not repeats or min(repeats) < 1:
        raise typer.BadParameter(f"--canary-repeats must be positive integers separated by commas, not {value!r}")
    return repeats


def main(
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold training DocBin (text only is used)"),
    output_dir: Path = typer.Argument(..., help="Folder for the adapter, token_ids.json and manifest.json"),
    base_model: str = typer.Option(DEFAULT_BASE, "--base-model", "-m", help="Hub name, local folder, or gemma3-270m (packaged)"),
    fraction: float = typer.Option(1.0, "--fraction", "-f", help="Share of training documents used (0 = no adaptation)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the document choice, LoRA init and batch order"),
    rank: int = typer.Option(8, "--rank", "-r", help="LoRA rank"),
    alpha: int = typer.Option(32, "--alpha", help="LoRA alpha"),
    dropout: float = typer.Option(0.05, "--dropout", help="LoRA dropout"),
    target_modules: str = typer.Option(DEFAULT_TARGETS, "--target-modules", help="Comma-separated module names"),
    learning_rate: float = typer.Option(DEFAULT_LEARNING_RATE, "--learning-rate", "--lr", help="Peak learning rate (AdamW)"),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the blocks (ignored when --max-steps > 0)"),
    max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps (0: from --epochs)"),
    seq_len: int = typer.Option(256, "--seq-len", help="Tokens per training block"),
    batch_size: int = typer.Option(8, "--batch-size", help="Blocks per forward pass"),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Forward passes per optimizer step"),
    warmup: float = typer.Option(0.05, "--warmup", help="Share of steps with linear warm-up"),
    quantization: str = typer.Option("auto", "--quantization", help="auto (4-bit when CUDA + bitsandbytes), 4bit or none"),
    vocabulary: str = typer.Option("full", "--vocabulary", help="full, or corpus: softmax over the adaptation text's tokens only (faster; pairs with generation's restricted vocabulary)"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (autocast on the CPU: faster where AMX / AVX512-BF16), or auto (bf16 where the CPU has it)"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir", help="Where packaged models are prepared"),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: default)"),
    canaries: int = typer.Option(0, "--canaries", help="Made-up canary records to plant per repetition count (0: none; see privacy canaries)"),
    canary_repeats: str = typer.Option("1,4,16", "--canary-repeats", help="Comma-separated copies of each canary group"),
    lang: str = typer.Option("es", "--lang", help="Language of the canaries' template"),
):
    """Train a LoRA adapter on a fraction of the gold training notes."""
    try:
        adapt(train_path, output_dir, base_model, fraction, seed, rank, alpha, dropout, target_modules, learning_rate,
              epochs, max_steps, seq_len, batch_size, grad_accum, warmup, quantization, vocabulary,
              resolve_precision(precision), cache_dir, threads, canaries=canaries,
              canary_repeats=parse_repeats(canary_repeats), lang=lang)
    except (ValueError, OSError) as err:  # AdaptError, CanaryError, DataError: the option or file is named
        msg.fail(str(err), exits=1)


if __name__ == "__main__":
    typer.run(main)
