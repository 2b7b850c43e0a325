"""Score a pipeline on a gold DocBin: MEDDOCAN's strict and merged measures and leak score, token F1.

    python -m scripts.evaluate MODEL DATA_PATH --output metrics.json --markdown metrics.md

`--brat DIR` also writes gold and predictions in the input layout of MEDDOCAN's official
evaluation script, to run it on the same predictions.

The measures are clinical_deid.scoring's; deid_synthesis.evaluate runs and renders them
(its KEYS say what each JSON key holds).
"""
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from clinical_deid.io import write_text
from deid_synthesis.cli_util import load_pipeline
from deid_synthesis.evaluate import evaluate, to_markdown


def main(
    model: Annotated[str, typer.Argument(help="Pipeline to evaluate: a path or an installed package name")],
    data_path: Annotated[Path, typer.Argument(help="Gold DocBin (.spacy) to score against")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the scores as JSON here")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", "-m", help="Write the tables as Markdown here")] = None,
    code: Annotated[Optional[Path], typer.Option("--code", "-c", help="Python file with registered functions the pipeline needs")] = None,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU")] = -1,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Documents per nlp.pipe batch")] = 64,
    brat: Annotated[Optional[Path], typer.Option("--brat", help="Also write gold and predictions as BRAT here, in the "
                                                 "input layout of MEDDOCAN's official evaluation script")] = None,
) -> None:
    """Score MODEL on DATA_PATH: strict/merged MEDDOCAN measures, token F1 and leak score."""
    if not Path(data_path).is_file():
        msg.fail(f"Data file not found: {data_path}", "Pass a DocBin (.spacy) file.", exits=1)
    nlp = load_pipeline(model, code, gpu_id)
    try:
        scores = evaluate(nlp, Path(data_path), batch_size=batch_size, brat_folder=brat, progress=True)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    msg.divider(f"Scores of {model} on {data_path}")
    tables = to_markdown(scores)
    print(tables)
    if output is not None:
        write_text(output, json.dumps(scores, indent=2) + "\n")
        msg.good(f"Saved scores of {scores['n_docs']:,} documents → {output}")
    if markdown is not None:
        write_text(markdown, tables)
        msg.good(f"Saved tables → {markdown}")
    if brat is not None:
        msg.good(f"Saved gold and predictions of {scores['n_docs']:,} documents as BRAT → {brat}",
                 f"Compare: python evaluate.py {brat} OUTPUT_DIR in MEDDOCAN's scripts/CODALAB-Evaluation-script/")


if __name__ == "__main__":
    typer.run(main)
