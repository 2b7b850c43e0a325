"""De-identify clinical notes with a pipeline: the production command.

    python -m clinical_deid.deidentify MODEL INPUT OUTPUT [--text-field text] [--id-field id]
        [--spans-output spans.jsonl] [--batch-size 64] [--n-process 1] [--block-size 256] [--threads 0]
        [--engine local|ray] [--ray-address ray://head:10001]
        [--mode redact|mask|pseudonymize] [--no-rules] [--seed 0] [--no-resume]
        [--key-file KEY [--create-key] | --insecure-demo-key] [--patient-id-field patient]
        [--max-chars 100000] [--max-doc-chars 10000000]
    python -m clinical_deid.deidentify MODEL --new-key-file KEY      (writes a new secret key)

INPUT is a folder of .txt files (OUTPUT: the same tree, de-identified), a .jsonl file (the
text field is replaced, other fields are kept; OUTPUT: a .jsonl file, one line per input
line), a .parquet file (its rows as JSONL records, values JSON cannot hold as strings;
OUTPUT: a .jsonl file, one line per row) or ``-`` for standard input (JSONL, or one text with
``--stdin-format text``; OUTPUT may be ``-`` for standard output). MODEL is a trained pipeline (a folder or an installed
package); ``deid_rules`` and ``deid_transform`` are added after its last component when it
has no ``deid_transform`` yet. The command never writes over its input, reports a document
that fails (unreadable file, bad JSON line, component error) with its id and goes on, and
resumes an interrupted run: a folder's output files are written to a temporary name and
renamed, so any output that exists is complete and is skipped; a JSONL output's complete
lines are verified against the input (ids, fields, spans) and as many inputs are skipped;
damage (NUL bytes, lines of another input, two runs at once) is refused, never kept. A run
holds an exclusive lock on its outputs: a second run on the same output stops at once.

Pseudonymization draws surrogates with a secret key (``--key-file`` or the environment
variable ``DEID_SURROGATE_KEY``; never logged): with it, a real value gets the same surrogate
in every note of the run, and notes with the same ``--patient-id-field`` share their date
shift. Without a key the command refuses to pseudonymize unless ``--insecure-demo-key`` is
given (surrogates anyone with the pipeline can re-draw). Notes longer than ``--max-chars``
are cut at line breaks or spaces and de-identified piece by piece (outputs and offsets are
joined back exactly); notes longer than ``--max-doc-chars`` are reported, not processed.
Messages name files, ids, offsets and exception types, never the text of a note.

`--n-process N` runs N workers, each loading the pipeline once and de-identifying blocks of
documents; `--engine ray` makes them Ray actors, on a local instance or the cluster of
`--ray-address` / RAY_ADDRESS (`pip install 'clinical-deid[ray]'`). The outputs are the same
as with one process, byte for byte: this process still reads and writes, in input order.

Installed as the console script ``clinical-deid`` (and ``python -m clinical_deid``); a model
wheel needs no code of its own: ``clinical-deid es_deid_synth INPUT OUTPUT``.

This module is the command's public face (its name in `project.yml` and the README, and the
API other steps import); the work is done in `clinical_deid.production`: options → source →
pipeline run → sink, with resume, locks and keys as pieces of their own.
"""
from .production.cli import cli_main, main
from .production.errors import DeidError
from .production.keys import create_key_file, read_key, use_key
from .production.locks import OutputLock
from .production.options import KEY_ENV, MAX_CHARS, MAX_DOC_CHARS, RunOptions
from .production.pieces import cut_points, deidentify_long
from .production.pipeline import ensure_registered, load_pipeline, prepare_pipeline
from .production.run import deidentify_main, run
from .production.sinks import PARTIAL_SUFFIX

__all__ = ["cli_main", "main", "DeidError", "create_key_file", "read_key", "use_key", "OutputLock", "KEY_ENV",
           "MAX_CHARS", "MAX_DOC_CHARS", "RunOptions", "cut_points", "deidentify_long", "ensure_registered",
           "load_pipeline", "prepare_pipeline", "deidentify_main", "run", "PARTIAL_SUFFIX"]

if __name__ == "__main__":
    cli_main()
