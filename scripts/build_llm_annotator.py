"""Project step `llm-annotator`: build the LLM annotator pipeline (spacy-llm NER) from its configs.

    python -m scripts.build_llm_annotator configs/llm_ner.cfg training/meddocan/llm/model-best \\
        --labels configs/llm/labels_meddocan.cfg --paths.examples corpus/meddocan/train.spacy

`--model configs/llm/model_server.cfg --paths.base_url http://HOST:8000/v1 --paths.served_model NAME`
annotates through an OpenAI-compatible server instead of the local model (configs/llm/model_local.cfg). Prints labels and counts, never example text (see deid_synthesis.llm_annotation.build).
"""
from pathlib import Path
import typer
from spacy.cli._util import parse_config_overrides
from wasabi import msg

from deid_synthesis.llm_annotation.build import build_llm_annotator, llm_config


def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Base config (configs/llm_ner.cfg)"),
    output_path: Path = typer.Argument(..., help="Folder to save the pipeline in (e.g. training/x/llm/model-best)"),
    labels: Path = typer.Option(..., "--labels", exists=True, dir_okay=False, help="Label set: configs/llm/labels_*.cfg"),
    model: Path = typer.Option(Path("configs/llm/model_local.cfg"), "--model", exists=True, dir_okay=False, help="The model: configs/llm/model_*.cfg"),
):
    """Build the LLM annotator from a base config, a label set and a model config."""
    try:
        built = build_llm_annotator(llm_config(config_path, [labels, model], parse_config_overrides(ctx.args)), output_path)
    except (ValueError, OSError) as err:  # config errors, DataError (names the DocBin), model load errors
        msg.fail(f"Could not build the LLM annotator from {config_path}", f"{type(err).__name__}: {err}", exits=1)
    shots = f"{built['examples']} few-shot examples" if built["examples"] else "zero-shot"
    msg.good(f"LLM annotator ({len(built['labels'])} labels, {shots}, model {built['model']}) → {output_path}")
    if built["example_entities"]:
        msg.table(sorted(built["example_entities"].items()), header=["label", "entities in examples"], divider=True)


if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
