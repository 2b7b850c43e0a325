"""What each structured-PHI rule adds to a trained NER model, on gold data (deid_synthesis.rules_effect).

    python -m scripts.rules_effect MODEL corpus/meddocan/test.spacy \\
        --output metrics/meddocan/rules_effect-ner_cpu.json \\
        --markdown metrics/meddocan/rules_effect-ner_cpu.md --rules-output metrics/meddocan/rules-ner_cpu.json
"""
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from clinical_deid.io import read_docbin, write_text
from clinical_deid.rules import POLICIES, RULES
from deid_synthesis.cli_util import load_pipeline
from deid_synthesis.rules_effect import predict, rules_effect, to_markdown


def main(
    model: Annotated[str, typer.Argument(help="Trained NER pipeline: a path or an installed package name")],
    data_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Gold DocBin (.spacy) to score against")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the results as JSON here")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", "-m", help="Write the tables as Markdown here")] = None,
    rules_output: Annotated[Optional[Path], typer.Option(help="Write the recommended rules as a JSON list (the `rules` of deid_rules)")] = None,
    rules: Annotated[str, typer.Option(help="Comma-separated rules to try (default: all of them, POSTCODE included)")] = ",".join(RULES),
    policy: Annotated[str, typer.Option(help="How rules and model merge: longest, ner or rules (as in deid_rules)")] = "longest",
    preset: Annotated[str, typer.Option(help="Rule → label preset: auto (from the language), meddocan, stockholm_epr, swedish_ner, none")] = "auto",
    code: Annotated[Optional[Path], typer.Option("--code", "-c", help="Python file with registered functions the pipeline needs")] = None,
    gpu_id: Annotated[int, typer.Option("--gpu-id", "-g", help="GPU id, or -1 for CPU")] = -1,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Documents per nlp.pipe batch")] = 64,
) -> None:
    """Score MODEL alone and with each set of structured-PHI rules on DATA_PATH; recommend the rules that help."""
    chosen = [r.strip().upper() for r in rules.split(",") if r.strip()]
    unknown = sorted(set(chosen) - set(RULES))
    if unknown:
        msg.fail(f"Unknown rule(s) in --rules: {unknown}", f"Choose from {', '.join(RULES)}.", exits=1)
    if policy not in POLICIES:
        msg.fail(f"Unknown --policy {policy!r}", f"Choose one of {', '.join(POLICIES)}.", exits=1)
    nlp = load_pipeline(model, code, gpu_id)
    try:
        gold_docs = read_docbin(data_path, nlp.vocab)
        start = time.perf_counter()
        pred_docs = predict(nlp, gold_docs, batch_size)
        msg.info(f"NER over {len(gold_docs):,} documents in {time.perf_counter() - start:.0f} s")
        result = rules_effect(gold_docs, pred_docs, nlp.lang, chosen, policy=policy, preset=preset)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    result = {"model": str(model), "data": str(data_path), **result}
    msg.divider(f"Rules merged into {model} on {data_path}")
    tables = to_markdown(result)
    print(tables)
    for path, text in ((output, json.dumps(result, indent=2) + "\n"), (markdown, tables),
                       (rules_output, json.dumps(result["recommended"]) + "\n")):
        if path is not None:
            write_text(path, text)
            msg.good(f"Saved → {path}")


if __name__ == "__main__":
    typer.run(main)
