"""The command line: `clinical-deid MODEL INPUT OUTPUT [options]` (also `python -m clinical_deid`,
`python -m clinical_deid.deidentify` and the project step `python -m scripts.deidentify`).

It parses the options, handles the key file, builds `RunOptions` and calls `run`; every error
is one line on stderr and exit code 1 (paths, ids and exception types: no traceback, no text).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from spacy.util import import_file
from wasabi import Printer

from .keys import create_key_file, read_key
from .options import BLOCK_SIZE, KEY_ENV, MAX_CHARS, MAX_DOC_CHARS, MODES, RunOptions
from .run import run


def main(
    model: Annotated[str, typer.Argument(help="Trained pipeline: a folder or an installed package name")],
    input_path: Annotated[Optional[str], typer.Argument(help="Folder of .txt files, a .jsonl or .parquet file, or - for stdin")] = None,
    output_path: Annotated[Optional[str], typer.Argument(help="Output folder (folder input), .jsonl file (JSONL or Parquet input), or - for stdout")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL: field with the text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL: field with the document id (else the line number)")] = "id",
    spans_output: Annotated[Optional[str], typer.Option(help="Also write the replaced spans (JSONL, offsets in input and output)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per batch (nlp.pipe)")] = 64,
    n_process: Annotated[int, typer.Option(min=1, help="Worker processes (local), or Ray actors with --engine ray")] = 1,
    engine: Annotated[str, typer.Option(help="local (this machine's processes) or ray (Ray actors: a local instance, or the cluster of --ray-address / RAY_ADDRESS)")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (ray://head:10001, auto); default: RAY_ADDRESS, else a local instance")] = None,
    block_size: Annotated[int, typer.Option(min=1, help="Documents per block handed to a worker")] = BLOCK_SIZE,
    threads: Annotated[int, typer.Option(min=0, help="BLAS / torch threads per worker (0: the cores shared out; Ray: CPUs per actor, 0: 1)")] = 0,
    mode: Annotated[Optional[str], typer.Option(help="redact, mask or pseudonymize (default: the pipeline's, else pseudonymize)")] = None,
    rules: Annotated[bool, typer.Option(help="Add the structured-PHI rules when the pipeline has no deid components")] = True,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the surrogates (default: the pipeline's)")] = None,
    resume: Annotated[bool, typer.Option(help="Skip outputs already complete from an earlier run")] = True,
    stdin_format: Annotated[str, typer.Option(help="Standard input: jsonl (one record per line) or text (one document)")] = "jsonl",
    code: Annotated[Optional[str], typer.Option(help="Comma-separated Python files to import (registered functions)")] = None,
    key_file: Annotated[Optional[Path], typer.Option(help=f"Secret surrogate key (else the environment variable {KEY_ENV})")] = None,
    create_key: Annotated[bool, typer.Option(help="With --key-file: create the key file first when it does not exist")] = False,
    new_key_file: Annotated[Optional[Path], typer.Option(help="Write a new secret key to this file (never overwrites), then run with it if INPUT and OUTPUT are given")] = None,
    insecure_demo_key: Annotated[bool, typer.Option(help="Pseudonymize without a secret key (surrogates anyone with the pipeline can re-draw): demonstrations only")] = False,
    patient_id_field: Annotated[Optional[str], typer.Option(help="JSONL: field with the patient id; a patient's notes share their date shift (with a key)")] = None,
    max_chars: Annotated[int, typer.Option(min=1, help="Notes longer than this are de-identified in pieces cut at line breaks or spaces")] = MAX_CHARS,
    max_doc_chars: Annotated[int, typer.Option(min=1, help="Notes longer than this are reported as too large, not processed")] = MAX_DOC_CHARS,
    label_map: Annotated[Optional[str], typer.Option(help='Surrogate kind per label, over the preset: a JSON file, inline JSON (\'{"ID_SSN": "id_generic"}\') or ID_SSN=id_generic,LOCATION_OTHER=city (labels in neither get a kind guessed from their name)')] = None,
) -> None:
    """De-identify clinical notes (folder of .txt, JSONL or stdin) with a trained pipeline."""
    msg = Printer()
    for path in (code or "").split(","):
        if path.strip():
            import_file(Path(path.strip()).stem, path.strip())
    if mode is not None and mode not in MODES:
        fail(msg, f"Unknown --mode {mode!r}: choose redact, mask or pseudonymize")
    try:
        if new_key_file is not None:
            key_file = create_key_file(new_key_file)
            msg.good(f"Wrote a new secret key to {key_file} (readable by you only; keep it out of version control)")
            if input_path is None and output_path is None:
                return
        if input_path is None or output_path is None:
            fail(msg, "INPUT and OUTPUT are needed (only --new-key-file runs without them)")
        if create_key and key_file is not None and not key_file.exists():
            create_key_file(key_file)
            msg.info(f"Created the secret key {key_file}")
        key = read_key(key_file) if (key_file is not None or os.environ.get(KEY_ENV)) else None
        options = RunOptions(
            input_path, output_path, text_field=text_field, id_field=id_field,  # type: ignore[arg-type]
            spans_output=spans_output, batch_size=batch_size, n_process=n_process, mode=mode, rules=rules,
            seed=seed, resume=resume, stdin_format=stdin_format, key=key, insecure_demo_key=insecure_demo_key,
            patient_id_field=patient_id_field, max_chars=max_chars, max_doc_chars=max_doc_chars, label_map=label_map,
            engine=engine, ray_address=ray_address, block_size=block_size, threads=threads)
        summary = run(model, options)
    except ValueError as err:  # DeidError and the like: messages that name paths, never text
        fail(msg, str(err))
    except OSError as err:  # anything the run did not foresee: the file and the reason, no traceback
        fail(msg, f"{err.filename or 'a file'}: {err.strerror or type(err).__name__}")
    if summary["failed"] and summary["documents"] == 0:
        raise typer.Exit(code=1)


def fail(msg: Printer, text: str) -> None:
    """The command's error: one line on stderr, exit code 1."""
    with contextlib.redirect_stdout(sys.stderr):
        msg.fail(text, exits=1)


def cli_main(argv: Optional[List[str]] = None) -> None:
    """The console script `clinical-deid MODEL INPUT OUTPUT ...` (and `python -m clinical_deid`).

    argv (Optional[List[str]]): the arguments (default: the process's).
    """
    app = typer.Typer(add_completion=False)
    app.command()(main)
    typer.main.get_command(app).main(args=list(sys.argv[1:] if argv is None else argv), prog_name="clinical-deid")
