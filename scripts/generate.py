"""Project step `generate`: K synthetic notes per dev-note prompt, through the spacy-llm
pipeline of a config (`configs/generate.cfg`); config overrides as extra options.

The logic is `deid_synthesis.generation.generate` (needs the `generation` extra).
"""
from pathlib import Path
from typing import Optional

import typer
from spacy.cli._util import parse_config_overrides
from wasabi import msg

from deid_synthesis.generation.adapt import AdaptError
from deid_synthesis.generation.generate import generate
from deid_synthesis.generation.prompts import GenerateError


def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Generation config (configs/generate.cfg)"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold dev DocBin: prompts are its notes' first words, annotated PHI replaced"),
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold training DocBin: its size in words (count_words) sets the volume"),
    output_dir: Path = typer.Argument(..., help="Folder for samples.jsonl, dropped.jsonl and report.json"),
    volume: float = typer.Option(1.0, "--volume", "-v", help="Target size as a multiple of the training split's words (count_words, on samples and gold alike)"),
    n_samples: Optional[int] = typer.Option(None, "--samples-per-prompt", "-k", help="K, instead of deriving it from --volume"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Whitespace-separated words of each dev note used as its prompt (the paper's 3-word prompts)"),
    limit: int = typer.Option(0, "--limit", help="Generate at most this many samples in this run (0: all)"),
    vocabulary: str = typer.Option("config", "--vocabulary", help="config (paths.vocabulary), full, or corpus (the adapter's token_ids.json: faster, changes the distribution)"),
    lang: str = typer.Option("es", "--lang", help="Language of the notes: the locale of the prompts' surrogates and the tokenizer that counts words"),
    raw_prompts: bool = typer.Option(False, "--raw-prompts", help="UNSAFE: take the dev notes' openings as they are, real PHI included (for dev files without entity annotation)"),
):
    """Generate synthetic notes with the spacy-llm pipeline of CONFIG_PATH (config overrides as extra options)."""
    try:
        generate(config_path, dev_path, train_path, output_dir, volume, n_samples, prompt_words, limit,
                 parse_config_overrides(ctx.args), vocabulary, lang=lang, raw_prompts=raw_prompts)
    except (GenerateError, AdaptError, OSError) as err:
        msg.fail(str(err), exits=1)


if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
