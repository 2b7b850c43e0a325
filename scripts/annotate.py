"""Project step `annotate`: label synthetic notes with an annotator pipeline, in chunks, into a
DocBin with provenance (see deid_synthesis.annotate). Prints counts and labels, never text.

    python -m scripts.annotate MODEL synthetic.jsonl corpus/x/synthetic/train.spacy \\
        --dev-output corpus/x/synthetic/dev.spacy --gold corpus/x/train.spacy \\
        --report corpus/x/synthetic/annotate.json
"""
from pathlib import Path
from typing import Dict, Optional

import srsly
import typer
from wasabi import msg

from deid_synthesis.annotate import annotate
from deid_synthesis.cli_util import load_pipeline

UNDER_PRODUCED = 0.5  # a label below this ratio of gold's rate is flagged in the printout


def number(value: Optional[float], fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def print_report(report: Dict) -> None:
    gold = report["gold"]
    msg.divider(f"Machine annotation of {report['input']}")
    msg.info(f"{report['documents']:,} notes ({report['empty_documents']:,} empty, skipped) → "
             f"{report['chunks']:,} chunks of ≤ {report['max_words']} words, {report['words']:,} words, "
             f"{report['entities']:,} entities, {report['seconds']:.1f} s")
    if gold is not None:
        msg.info(f"Gold {report['gold_path']}: {gold['documents']:,} docs, {gold['words']:,} words, "
                 f"{gold['entities']:,} entities")
    header = ["label", "synthetic", "per 1k words"]
    if gold is not None:
        header += ["gold", "per 1k words", "ratio"]
    rows = []
    for label, row in report["per_label"].items():
        cells = [label, f"{row['synthetic']:,}", number(row["synthetic_per_1k"])]
        if gold is not None:
            cells += [f"{row['gold']:,}", number(row["gold_per_1k"]), number(row["ratio"])]
        rows.append(cells)
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * (len(header) - 1))
    low = [label for label, row in report["per_label"].items()
           if row.get("ratio") is not None and row["ratio"] < UNDER_PRODUCED]
    if low:
        msg.warn(f"Under-produced (rate below {UNDER_PRODUCED:.0%} of gold's): {', '.join(low)}")
    if report["dev_output"]:
        msg.good(f"Wrote {report['chunks'] - report['dev_chunks']:,} annotated chunks → {report['output']}, "
                 f"{report['dev_chunks']:,} of {report['dev_documents']:,} held-out notes → {report['dev_output']}")
    else:
        msg.good(f"Wrote {report['chunks']:,} annotated chunks → {report['output']}")


def main(
    model: str = typer.Argument(..., help="Annotator pipeline: a path or an installed package name"),
    jsonl_path: Path = typer.Argument(..., help="Synthetic notes (JSONL with 'text', 'id' and provenance)"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (DocBin, one chunk per Doc)"),
    gold_path: Optional[Path] = typer.Option(None, "--gold", help="Gold DocBin to compare entities per label with"),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the report as JSON here"),
    dev_output: Optional[Path] = typer.Option(None, "--dev-output", help="Hold out notes for the synthetic model's dev set into this DocBin"),
    dev_share: float = typer.Option(0.1, "--dev-share", help="Share of the notes held out (with --dev-output)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev hold-out"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk (the paper: 128)"),
    n_process: int = typer.Option(1, "--n-process", help="Processes for nlp.pipe (CPU pipelines)"),
    batch_size: int = typer.Option(64, "--batch-size", help="Chunks per nlp.pipe batch"),
    code: Optional[Path] = typer.Option(None, "--code", "-c", help="Python file with registered functions the pipeline needs"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
    engine: str = typer.Option("local", "--engine", help="local (nlp.pipe) or ray (--n-process Ray actors, each loading MODEL)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local instance)"),
    threads: int = typer.Option(1, "--threads", help="CPUs (BLAS / torch threads) per Ray actor"),
):
    """Label synthetic notes with an annotator pipeline, in chunks, into a DocBin with provenance."""
    nlp = load_pipeline(model, code, gpu_id)
    try:
        report = annotate(nlp, jsonl_path, output_path, max_words, batch_size, n_process, gold_path,
                          dev_output, dev_share, seed, progress=True, engine=engine, model=model,
                          code=str(code) if code else None, ray_address=ray_address, threads=threads)
    except ValueError as err:  # DataError, CorpusError: the message names the file and the place
        msg.fail(str(err), exits=1)
    report["model"] = str(model)
    print_report(report)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(report_path, report)
        msg.good(f"Saved report → {report_path}")


if __name__ == "__main__":
    typer.run(main)
