"""Project step `bench-tokenizer`: the clinical tokenizer (and deid_rules / deid_transform) on
pathological input beside spaCy's own tokenizer, in one run (deid_synthesis.bench_tokenizer)."""
import json
import os
from pathlib import Path
from typing import Annotated, Dict, Optional

import spacy
import typer
from wasabi import msg

from clinical_deid.io import write_text
from deid_synthesis.bench_tokenizer import bench_deid, bench_tokenizers, check_identity, table_rows


# Long: the printout of four measurements, each a few lines; splitting it would only move them.
def main(
    chars: Annotated[int, typer.Option(min=1000, help="Largest size in characters (also /10 and /100)")] = 1_000_000,
    cap: Annotated[float, typer.Option(help="Skip a measurement projected to take longer (seconds)")] = 60.0,
    identity: Annotated[Optional[Path], typer.Option(help="Folder of .txt notes to check the tokens against the old tokenizer (skipped when absent)")] = None,
    deid: Annotated[bool, typer.Option(help="Also time deid_rules and deid_transform on the same kinds")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here")] = None,
) -> None:
    """Tokenizer seconds on 1,000,000 characters of each pathological kind, beside spaCy's."""
    load_before = os.getloadavg()
    msg.divider(f"Tokenizers, up to {chars:,} characters (cap {cap:g} s a measurement)")
    result: Dict[str, object] = {"chars": chars, "cap_seconds": cap, "cpu_count": os.cpu_count(),
                                 "spacy": spacy.__version__, "loadavg_before": load_before}
    timings = bench_tokenizers(chars, cap)
    result["tokenizers"] = timings
    result["loadavg_after_tokenizers"] = os.getloadavg()
    msg.table(table_rows(timings, chars), header=("kind", "tokenizer", "chars", "wall s", "cpu s", "chars/s",
                                                  "x project", "growth", "not measured"), divider=True)
    msg.text(f"Load average before {tuple(round(x, 2) for x in load_before)}, after "
             f"{tuple(round(x, 2) for x in result['loadavg_after_tokenizers'])} on {os.cpu_count()} CPUs; "
             "growth = cpu s at chars / cpu s at chars/10 (10: linear, 100: quadratic)")
    if identity is not None and not identity.is_dir():
        msg.warn(f"No folder {identity}: the identity check is skipped")
    elif identity is not None:
        msg.divider(f"Same tokens as before: {identity}")
        ident = check_identity(identity)
        result["identity"] = ident
        report = (f"{ident['documents']:,} documents, {ident['characters']:,} characters, {ident['tokens']:,} tokens: "
                  f"{len(ident['different'])} differ ({len(ident['different_forced'])} with cuts forced to 8); "
                  f"{ident['cut_documents']} took the cutting path; cpu s project {ident['seconds_project']}, "
                  f"before {ident['seconds_before']}")
        (msg.good if not ident["different"] and not ident["different_forced"] else msg.fail)(report)
    if deid:
        msg.divider("deid_rules and deid_transform (blank es pipeline, rules only)")
        result["deid"] = bench_deid(chars, cap)
        result["loadavg_after_deid"] = os.getloadavg()
        for kind, by_comp in result["deid"].items():
            for name, entry in by_comp.items():
                if entry.get("top_functions"):
                    msg.warn(f"{kind} {name}: growth {entry['growth']}, exponent {entry.get('exponent')}",
                             "; ".join(entry["top_functions"]))
    if output is not None:
        write_text(output, json.dumps(result, indent=2))
        msg.good(f"Saved the figures → {output}")



if __name__ == "__main__":
    typer.run(main)
