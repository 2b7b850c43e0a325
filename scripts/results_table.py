"""Write the results table of all scored runs (deid_synthesis.results_table)."""
from pathlib import Path

import typer
from wasabi import msg

from clinical_deid.io import atomic_open
from deid_synthesis.results_table import collect_rows, to_markdown


def main(
    metrics_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="metrics/ folder"),
    training_dir: Path = typer.Argument(..., help="training/ folder (for training times)"),
    output: Path = typer.Option(..., "--output", "-o", help="Markdown file to write"),
):
    """Write the results table of all scored runs; incomplete runs are skipped with the reason."""
    rows, skipped = collect_rows(metrics_dir, training_dir)
    for path, reason in skipped:
        msg.warn(f"Skipped {path}: {reason}")
    with atomic_open(output) as handle:
        handle.write(to_markdown(rows))
    msg.good(f"{len(rows)} scored runs → {output}" + (f" ({len(skipped)} incomplete, skipped)" if skipped else ""))


if __name__ == "__main__":
    typer.run(main)
