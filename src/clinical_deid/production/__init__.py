"""The production command, in pieces: options → source → pipeline run → sink, with resume apart.

- `options`: what one run is asked to do (`RunOptions`), checked before anything is read.
- `sources`: folder of .txt, JSONL or Parquet file, or standard input → `Item`s, failures marked, not raised.
- `pipeline`: the loaded pipeline with the de-identification components, error handlers.
- `pieces`: a note longer than `--max-chars` cut, de-identified piece by piece, joined back.
- `run`: a run from the options to the summary: this process, or workers.
- `documents`: the loop over `nlp.pipe` in memory zones, the fallback to one document at a time.
- `workers`, `ray_engine`: `--n-process` workers (local processes, or Ray actors with `--engine
  ray`) that de-identify blocks; their outcomes are written here, in input order.
- `sinks`: the output folder, the JSONL output, the spans file, the summary.
- `resume`: what an interrupted run left that can be kept (verified), and what is cut.
- `locks`, `paths`, `keys`: one run per output, never over the input, the secret key.
- `cli`: the typer command (`clinical-deid`, `python -m clinical_deid`).

The public API is re-exported by `clinical_deid.deidentify`.
"""
