"""The production check (deid_synthesis.residual_phi): is every gold PHI string the model found gone
from the de-identified output, and how much gold PHI is left in it?

    python -m scripts.residual_phi ../shared/data/meddocan/test deidentified/meddocan/test \\
        --spans deidentified/meddocan/test.spans.jsonl --output metrics/meddocan/residual_phi.json \\
        --markdown metrics/meddocan/residual_phi.md
    python -m scripts.residual_phi assets/demo-es check/output.jsonl --format jsonl --part test \\
        --spans check/spans.jsonl --lenient

GOLD in any format the converters read (see deid_synthesis.residual_input); fewer than half the
gold documents matched by the output is an error (exit 1), naming the file and example ids.
"""
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from clinical_deid.io import atomic_open
from deid_synthesis.corpus.records import CorpusError, Problems
from deid_synthesis.residual_input import GOLD_FORMATS, load_inputs, match_problem
from deid_synthesis.residual_phi import MATCHES, check_run, to_markdown


def main(
    gold: Annotated[Path, typer.Argument(exists=True, help="Gold of the input documents: BRAT folder, JSONL or CoNLL file, DocBin (.spacy), or a data folder with --part")],
    output_path: Annotated[Path, typer.Argument(exists=True, help="What clinical_deid.deidentify wrote: a folder or a JSONL file")],
    spans: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Its --spans-output JSONL (needed for 'found' and violations)")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the table as Markdown here")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL output: field with the text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL output: field with the document id")] = "id",
    match: Annotated[str, typer.Option(help="word (not glued to letters/digits around it) or substring")] = "word",
    limit: Annotated[int, typer.Option(min=0, help="First N gold documents by id (0: all), for a smoke run")] = 0,
    strict: Annotated[bool, typer.Option(help="Exit with 1 on a violation not kept by policy, or a document without output")] = False,
    show: Annotated[bool, typer.Option(help="Print the strings of the violations (PHI: on screen only, never written)")] = False,
    fmt: Annotated[str, typer.Option("--format", help=f"Gold format: {', '.join(GOLD_FORMATS)} (auto: from the name)")] = "auto",
    part: Annotated[Optional[str], typer.Option(help="GOLD is a data folder: check this part of it (e.g. test), found as convert finds it")] = None,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip and count malformed gold items, as convert --lenient does")] = False,
    malformed: Annotated[str, typer.Option(help="strict or lenient (the project's variable; lenient = --lenient)")] = "strict",
) -> None:
    """Check that every found gold PHI string is gone from the de-identified output; report the residual share."""
    if match not in MATCHES:
        msg.fail(f"Unknown --match {match!r}: choose word or substring", exits=1)
    if malformed not in ("strict", "lenient"):
        msg.fail(f"Unknown --malformed {malformed!r}: choose strict or lenient", exits=1)
    problems = Problems(lenient=lenient or malformed == "lenient")
    try:
        gold_docs, outputs, doc_spans, without_id = load_inputs(
            gold, output_path, spans, fmt, part, problems, text_field, id_field, limit)
    except (CorpusError, ValueError) as err:
        msg.fail(str(err), exits=1)
    for kind, count in sorted(problems.counts.items()):
        msg.warn(f"Skipped {count:,} malformed gold items ({kind}), first at {problems.where[kind][0]}")
    result, rows = check_run(gold_docs, outputs, doc_spans, match)
    problem = match_problem(len(gold_docs), result["documents"], [d.id for d in gold_docs], sorted(outputs),
                            without_id, output_path, gold)
    if problem:
        msg.fail(problem, exits=1)
    result.update(gold=str(gold), output_path=str(output_path), spans=str(spans) if spans else None)
    msg.divider("Residual PHI")
    table = to_markdown(result)
    print(table)
    if result["documents_without_output"]:
        msg.warn(f"{result['documents_without_output']:,} gold documents have no output: "
                 + ", ".join(result["ids_without_output"][:10]))
    if show:
        texts = {d.id: d.text for d in gold_docs}
        for row in rows:
            if row["violation"]:
                msg.text(f"{row['id']} {row['label']} {row['start']}-{row['end']} {row['causes']}: "
                         f"{texts[row['id']][row['start']:row['end']]!r}")
    elif result["violation_ids"]:
        msg.text(f"Documents with violations: {', '.join(result['violation_ids'][:20])}"
                 + (" ..." if len(result["violation_ids"]) > 20 else "") + " (--show prints the strings)")
    for path, text, what in ((output, json.dumps(result, indent=2, ensure_ascii=False) + "\n", "figures"),
                             (markdown, table, "table")):
        if path is not None:
            with atomic_open(path) as handle:
                handle.write(text)
            msg.good(f"Saved the {what} → {path}")
    if strict and (result["overall"]["violations_not_kept_by_policy"] or result["documents_without_output"]):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    typer.run(main)
