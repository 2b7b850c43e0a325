"""Project step `release`: the shareable bundle of a synthetic run (pseudonymized corpus as DocBin
and JSONL, datasheet, SHA256SUMS), refused when a privacy figure fails its threshold (see
deid_synthesis.release). Prints figures and check names, never text.

    python -m scripts.release corpus/x/synthetic-r-pseudo synthetic/x/r-pseudo/samples.jsonl release/x/r-pseudo \\
        --gold corpus/x/train.spacy --gold corpus/x/dev.spacy --membership metrics/x/membership-r.json
"""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from deid_synthesis.release import ReleaseInputs, ReleaseRefused, build_release


def main(
    corpus_dir: Path = typer.Argument(..., help="The pseudonymized synthetic corpus folder (train.spacy, dev.spacy, annotate.json)"),
    notes: Path = typer.Argument(..., help="Its notes (JSONL, as pseudonymize-synthetic writes them)"),
    output_dir: Path = typer.Argument(..., help="The bundle folder (replaced when it exists)"),
    gold: List[Path] = typer.Option(..., "--gold", help="Real DocBin the run touched (repeat: train, dev); read into memory for the checks"),
    membership: Optional[Path] = typer.Option(None, "--membership", help="privacy-membership's JSON of the run's adapter"),
    canaries: Optional[Path] = typer.Option(None, "--canaries", help="privacy-canaries' JSON (an adapter of the same setup with canaries)"),
    generation: Optional[Path] = typer.Option(None, "--generation", help="The run's generation report.json"),
    adapter_manifest: Optional[Path] = typer.Option(None, "--adapter-manifest", help="The adapter's manifest.json"),
    annotator_scores: Optional[Path] = typer.Option(None, "--annotator-scores", help="The annotator's scores on the real test split (evaluate's JSON)"),
    synthetic_scores: Optional[Path] = typer.Option(None, "--synthetic-scores", help="The model trained on this corpus, scored on the real test split"),
    max_mia_auc: float = typer.Option(0.6, "--max-mia-auc", help="Highest membership inference AUC released"),
    max_linkage: int = typer.Option(0, "--max-linkage", help="Most linked notes released"),
    max_verbatim: int = typer.Option(0, "--max-verbatim", help="Most verbatim identifying PHI strings released"),
    max_ngram_recall: float = typer.Option(0.10, "--max-ngram-recall", help="Highest 5-gram recall released"),
    force: int = typer.Option(0, "--force", help="1: build even when a check fails (the datasheet says so)"),
    name: str = typer.Option("", "--name", help="The corpus's name in the datasheet"),
    data_licence: str = typer.Option("", "--data-licence", help="Licence of the real corpus the run learned from"),
    base_model_licence: str = typer.Option("", "--base-model-licence", help="Licence of the generator's base model"),
):
    """Build the release bundle of a synthetic run, or refuse when a privacy check fails."""
    inputs = ReleaseInputs(corpus_dir, notes, gold, membership, canaries, generation, adapter_manifest,
                           annotator_scores, synthetic_scores)
    thresholds = {"max_mia_auc": max_mia_auc, "max_linkage": max_linkage, "max_verbatim": max_verbatim,
                  "max_ngram_recall": max_ngram_recall}
    licences = {k: v for k, v in (("real corpus", data_licence), ("generator base model", base_model_licence)) if v}
    try:
        sheet = build_release(inputs, output_dir, thresholds, bool(force), licences, name or output_dir.name)
    except ReleaseRefused as err:
        msg.fail(f"Release refused: {err}", exits=1)
    except (ValueError, OSError) as err:  # DataError, CorpusError: the file is named
        msg.fail(str(err), exits=1)
    msg.table([[r["check"], r["value"], f"≤ {r['threshold']}", "yes" if r["passed"] else "NO"] for r in sheet["checks"]],
              header=["check", "value", "threshold", "passed"], divider=True)
    if sheet["forced"]:
        msg.warn(f"FORCED release despite: {', '.join(sheet['failed_checks'])} (the datasheet says so)")
    msg.good(f"Release bundle → {output_dir} ({sheet['corpus']['notes']:,} notes, {sheet['seconds']:.1f} s): "
             "corpus/, datasheet.md, datasheet.json, SHA256SUMS")


if __name__ == "__main__":
    typer.run(main)
