"""Benchmark of training configs before training them (deid_synthesis.bench_configs).

    python -m scripts.bench_configs speed configs/ner_cpu.cfg corpus/meddocan/test.spacy \\
        --variant fast:components.tok2vec.model.encode.width=64,components.tok2vec.model.encode.depth=2
    python -m scripts.bench_configs update configs/ner_trf.cfg corpus/meddocan/train.spacy \\
        --set paths.transformer=cache/encoders/multilingual-e5-small

`speed` prints each variant's inference tokens/s and its ratio to the config as it is, measured
in one run; `update` prints seconds per training update. Load averages are printed beside them.
"""
import json
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import typer
from wasabi import msg

from deid_synthesis.bench_configs import inference_speed, update_speed

app = typer.Typer(no_args_is_help=True)


def top_level_parts(text: str) -> List[str]:
    """Split at the commas outside brackets: "a=[1,2],b=3" -> ["a=[1,2]", "b=3"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [part for part in parts + [text[start:]] if part]


def parse_overrides(text: str) -> Dict:
    """"a.b=1,c.d=x,e=[1,2]" -> {"a.b": 1, "c.d": "x", "e": [1, 2]} (values read as JSON where they parse)."""
    overrides = {}
    for part in top_level_parts(text):
        key, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"{part!r} is not name=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


@app.command()
def speed(
    config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Training config")],
    docbin: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Documents to run (and their labels)")],
    variant: Annotated[List[str], typer.Option(help="NAME:name=value,... (repeatable)")] = [],
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds; the best of them counts")] = 2,
    output: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here")] = None,
) -> None:
    """Inference tokens/s of config variants, randomly initialised, one run."""
    variants = {"as is": {}}
    for item in variant:
        name, sep, overrides = item.partition(":")
        if not sep:
            raise typer.BadParameter(f"--variant {item!r}: NAME:name=value,...")
        variants[name] = parse_overrides(overrides)
    result = inference_speed(variants, config, docbin, rounds=rounds)
    base = result["variants"]["as is"]
    msg.table([(name, f"{value:,.0f}", f"{value / base:.2f}") for name, value in result["variants"].items()],
              header=("variant", "tokens/s", "x as is"), divider=True)
    msg.info(f"{result['tokens']:,} tokens; load average {result['load_before']:.2f} → {result['load_after']:.2f}")
    if output:
        output.write_text(json.dumps(result, indent=2), encoding="utf-8")


@app.command()
def update(
    config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Training config")],
    docbin: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Training documents")],
    set_: Annotated[str, typer.Option("--set", help="Overrides: name=value,...")] = "",
    n_updates: Annotated[int, typer.Option(min=1, help="Updates to time")] = 5,
    output: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here")] = None,
) -> None:
    """Seconds per training update (batches of about 2,000 padded words)."""
    result = update_speed(config, docbin, parse_overrides(set_), n_updates=n_updates)
    msg.table([(u["docs"], u["words"], u["seconds"]) for u in result["updates"]],
              header=("docs", "words", "seconds"), divider=True)
    msg.info(f"{result['words_per_second']:,.0f} words/s; load average {result['load_before']:.2f} → "
             f"{result['load_after']:.2f}")
    if output:
        output.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    app()
