"""Write the report of one synthetic run (deid_synthesis.report): Markdown, PNG plots, JSON summary.

    python -m scripts.report --dataset meddocan --run v100-corpus --config ner_cpu \\
        --output reports/meddocan/v100-corpus-ner_cpu
"""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from deid_synthesis.report import TARGET, ReportError, cell, default_paths, write_report


def main(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (metrics/<dataset>/ ...)"),
    run: str = typer.Option(..., "--run", help="Synthetic run name (synth_run)"),
    config: str = typer.Option(..., "--config", help="Training config name (ner_cpu, ner_trf)"),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for report.md, report.json and the PNGs"),
    gold_scores: Optional[Path] = typer.Option(None, help="Gold model scores (default metrics/<dataset>/<config>.json)"),
    synthetic_scores: Optional[Path] = typer.Option(None, help="Synthetic model scores (default metrics/<dataset>/synthetic-<run>-<config>.json)"),
    corpus_report: Optional[Path] = typer.Option(None, help="Gold corpus report (default corpus/<dataset>/report.json)"),
    annotate_report: Optional[Path] = typer.Option(None, help="Annotation report (default corpus/<dataset>/synthetic-<run>/annotate.json)"),
    privacy: Optional[Path] = typer.Option(None, help="Privacy figures (default metrics/<dataset>/privacy-<run>.json)"),
    adapter_manifest: Optional[Path] = typer.Option(None, help="Adapter manifest (default training/<dataset>/adapter-<run>/manifest.json)"),
    generation_report: Optional[Path] = typer.Option(None, help="Generation report (default synthetic/<dataset>/<run>/report.json)"),
    gold_train_time: Optional[Path] = typer.Option(None, help="Default training/<dataset>/<config>/train_time.json"),
    synthetic_train_time: Optional[Path] = typer.Option(None, help="Default training/<dataset>/synthetic-<run>-<config>/train_time.json"),
    membership: Optional[Path] = typer.Option(None, help="Membership inference figures (default metrics/<dataset>/membership-<run>.json)"),
    canaries: Optional[Path] = typer.Option(None, help="Canary figures (default metrics/<dataset>/canaries-<run>.json)"),
    top: int = typer.Option(5, "--top", help="Labels listed where the synthetic model loses"),
):
    """Write the report of one synthetic run: Markdown, PNG plots and a JSON summary."""
    given = dict(gold_scores=gold_scores, synthetic_scores=synthetic_scores, corpus_report=corpus_report,
                 annotate_report=annotate_report, privacy=privacy, adapter_manifest=adapter_manifest,
                 generation_report=generation_report, gold_train_time=gold_train_time,
                 synthetic_train_time=synthetic_train_time, membership=membership, canaries=canaries)
    paths = {name: given[name] or path for name, path in default_paths(dataset, run, config).items()}
    try:
        summary = write_report(paths, output, f"Synthetic run {run} on {dataset} ({config})", top)
    except ReportError as err:
        msg.fail("Can't write the report", str(err), exits=1)
    msg.info(f"Strict F1 synthetic / gold: {cell(summary['overall']['strict_f']['ratio'])} (target {TARGET}); "
             f"not run: {', '.join(summary['missing']) or 'none'}")
    msg.good(f"Report → {output / 'report.md'}")


if __name__ == "__main__":
    typer.run(main)
