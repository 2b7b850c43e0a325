"""Project step `bench-deid`: tokens/s of the production de-identification command beside spaCy's
NER-alone speed, and the rules' and pseudonymization's share of the NER time (see
deid_synthesis.bench_deid for what is measured and why).

    python -m scripts.bench_deid MODEL TEST_INPUT TEST_DOCBIN --repeat 4 --output metrics/meddocan/bench_deid.json

TEST_INPUT is a folder of .txt notes (BRAT) or a JSONL file of {id, text} records: `scripts.gold_texts`
writes one from any corpus format (BRAT, JSONL, CoNLL), as the project step does.
"""
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from wasabi import msg

from clinical_deid.deidentify import KEY_ENV, create_key_file, read_key
from clinical_deid.io import atomic_open
from deid_synthesis.bench_deid import bench, table


def main(
    model: Annotated[str, typer.Argument(help="Trained pipeline (folder or package), without deid components")],
    input_path: Annotated[Path, typer.Argument(exists=True, help="Folder of .txt notes (e.g. the BRAT test folder; .ann files are ignored) or JSONL file of {id, text} records (scripts.gold_texts)")],
    docbin: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Gold DocBin of the same notes, for spaCy's speed figure")],
    output: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Repeat the text N times")] = 1,
    limit: Annotated[int, typer.Option(min=0, help="First N documents only (0: all), for a smoke run")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per batch (production default)")] = 64,
    n_process: Annotated[str, typer.Option(help="Comma-separated process counts of the end-to-end runs")] = "1,2",
    engines: Annotated[str, typer.Option(help="Comma-separated engines of the end-to-end runs: local, ray (Ray actors, a local instance)")] = "local",
    mode: Annotated[str, typer.Option(help="pseudonymize, redact or mask")] = "pseudonymize",
    seed: Annotated[int, typer.Option(help="Seed of the surrogates")] = 0,
    profile: Annotated[bool, typer.Option(help="cProfile deid_transform and print its top functions")] = False,
    key_file: Annotated[Optional[Path], typer.Option(help=f"Secret surrogate key (else the environment variable {KEY_ENV})")] = None,
    create_key: Annotated[bool, typer.Option(help="With --key-file: create the key file first when it does not exist")] = False,
    insecure_demo_key: Annotated[bool, typer.Option(help="Pseudonymize without a secret key (demonstrations only)")] = False,
) -> None:
    """Tokens/s of the production de-identification command vs spaCy's NER-alone speed, and component costs."""
    processes = [int(n) for n in n_process.split(",") if n.strip()]
    try:
        if create_key and key_file is not None and not key_file.exists():
            create_key_file(key_file)
        key = read_key(key_file) if (key_file is not None or os.environ.get(KEY_ENV)) else None
        result = bench(model, input_path, docbin, repeat=repeat, limit=limit, batch_size=batch_size,
                       n_processes=processes, mode=mode, seed=seed, profile=profile, key=key,
                       insecure_demo_key=insecure_demo_key, engines=[e.strip() for e in engines.split(",") if e.strip()])
    except ValueError as err:
        msg.fail(str(err), exits=1)
    msg.divider("De-identification speed")
    costs = result["components"]
    msg.text(f"{costs['documents']:,} documents, {costs['tokens']:,} tokens (repeat {repeat}); "
             f"load average {result['load_average_before'][0]:.2f} → {result['load_average_after'][0]:.2f} "
             f"on {result['cpu_count']} CPUs")
    msg.table(table(result), header=("measure", "value", "target", ""), divider=True)
    msg.text(f"Seconds on the same docs: tokenizer {costs['tokenizer_seconds']:.2f}, NER {costs['ner_seconds']:.2f}, "
             f"rules {costs['rules_seconds']:.2f}, deid_transform ({costs['mode']}) {costs['transform_seconds']:.2f}")
    if profile:
        print(result["profile"])
    if output is not None:
        with atomic_open(output) as json_out:
            json_out.write(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=2) + "\n")
        msg.good(f"Saved the figures → {output}")


if __name__ == "__main__":
    typer.run(main)
