"""The summary of a run: counts kept while it writes, figures at its end, the printed report.

"tokens" counts spaCy tokens (len(doc)), so its speed is tokens/s, the measure `spacy evaluate`
reports as "words/s"; the project's "words" (clinical_deid.tokenizer.count_words) is another one.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict

from wasabi import Printer

MAX_FAILURES_KEPT = 10_000  # the summary keeps this many failures' ids and reasons; counts go on
FAILURES_SHOWN = 20


def new_summary(skipped: int) -> Dict[str, Any]:
    """The counts of a run that found `skipped` documents done by an earlier one."""
    return {"documents": 0, "skipped": skipped, "failed": 0, "failures": [], "tokens": 0, "entities": Counter()}


def finish_summary(summary: Dict[str, Any], seconds: float) -> Dict[str, Any]:
    """Add the run's time and speed, and make its entity counts a sorted plain dict.

    summary (Dict[str, Any]): from new_summary, counted.
    seconds (float): the run's time.
    RETURNS (Dict[str, Any]): `summary`.
    """
    summary["seconds"] = round(seconds, 3)
    summary["tokens_per_second"] = round(summary["tokens"] / seconds) if seconds > 0 else 0
    summary["entities"] = dict(sorted(summary["entities"].items()))
    return summary


def print_summary(msg: Printer, summary: Dict[str, Any], output_path: str) -> None:
    """Print what the run did: documents, speed, entities by label, failures by id."""
    msg.divider("De-identification")
    msg.good(
        f"Processed {summary['documents']:,} documents → {output_path} "
        f"({summary['skipped']:,} already done, {summary['failed']:,} failed)"
    )
    msg.info(f"{summary['tokens']:,} tokens in {summary['seconds']:.1f} s: {summary['tokens_per_second']:,} tokens/s")
    if summary["entities"]:
        msg.table(summary["entities"], header=("label", "entities"), divider=True, max_col=48)
    if summary["failed"]:
        shown = summary["failures"][:FAILURES_SHOWN]
        msg.warn(f"{summary['failed']:,} documents failed (no output written for them):")
        for failure in shown:
            msg.text(f"  {failure['id']}: {failure['error']}")
        if summary["failed"] > len(shown):
            msg.text(f"  ... and {summary['failed'] - len(shown):,} more")
