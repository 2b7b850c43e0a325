"""Project step `package` / `packages`: a trained NER as a de-identification wheel.

    python -m scripts.package_pipeline training/meddocan/ner_cpu/model-best packages \\
        --name es_deid_synth --version 0.1.0 --lang es --scores metrics/meddocan/ner_cpu.json \\
        --config configs/deid_es.cfg --rules metrics/meddocan/rules-ner_cpu.json --training-text corpus/meddocan/train.spacy

The product is assembled from its config with `spacy assemble` (deid_synthesis.package_pipeline).
"""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from clinical_deid.label_map import read_label_map
from deid_synthesis.package_pipeline import MODES, LeakingWheel, package_pipeline


def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Trained pipeline (model-best)"),
    output_dir: Path = typer.Argument(..., help="Folder for the package (e.g. packages/)"),
    name: str = typer.Option(..., help="Package name, e.g. es_deid_synth"),
    version: str = typer.Option("0.1.0", help="Package version"),
    lang: str = typer.Option(..., help="Language of the pipeline (es, sv)"),
    scores: Path = typer.Option(..., exists=True, dir_okay=False, help="Real-test scores of MODEL (metrics/.../x.json)"),
    gold_scores: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Real-test scores of the gold-trained model, to compare"),
    data_kind: str = typer.Option("synthetic", help="Training data: synthetic (machine-annotated) or gold"),
    training_data: str = typer.Option("", help="One-line description of the training data"),
    corpus_report: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Sizes of the training data: corpus/<dataset>/report.json, or a synthetic corpus's annotate.json"),
    base_model_licence: Optional[str] = typer.Option(None, help="Terms of the base model that wrote the synthetic notes"),
    data_licence: str = typer.Option("CC BY 4.0", help="Licence of the training data"),
    licence: Optional[str] = typer.Option(None, help="Licence of the package (default: the data licence)"),
    mode: str = typer.Option("pseudonymize", help="Default mode of deid_transform: redact, mask or pseudonymize"),
    build: str = typer.Option("wheel", help="wheel, or none (package folder only)"),
    rules: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="JSON list of the deid_rules rules to run (rules-effect's output); default: the config's"),
    training_text: List[Path] = typer.Option([], "--training-text", exists=True, dir_okay=False, help="Text MODEL learned from (.spacy, .jsonl; repeat): the wheel must hold none of its terms"),
    config: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Config the product is assembled from (default: configs/deid_<lang>.cfg)"),
    label_map: str = typer.Option("", help='Surrogate kind per label over the preset: a JSON file, inline JSON (\'{"ID_SSN": "id_generic"}\') or ID_SSN=id_generic,LOCATION_OTHER=city (labels in neither get a kind guessed from their name)'),
):
    """Assemble a trained NER with the de-identification components and package it as a wheel."""
    if data_kind not in ("synthetic", "gold"):
        msg.fail(f"Unknown --data-kind {data_kind!r}: choose synthetic or gold", exits=1)
    if mode not in MODES:
        msg.fail(f"Unknown --mode {mode!r}: choose {', '.join(MODES)}", exits=1)
    if build not in ("wheel", "none"):
        msg.fail(f"Unknown --build {build!r}: choose wheel or none", exits=1)
    if not name.isidentifier() or not name.startswith(f"{lang}_"):
        msg.fail(f"--name {name!r} must be a Python identifier starting with '{lang}_' (e.g. {lang}_deid_synth)", exits=1)
    if build == "wheel" and not training_text:
        msg.fail("--training-text is required to build a wheel: the training DocBins (.spacy) or notes (.jsonl) "
                 "the wheel is checked against", exits=1)
    try:
        label_kinds = read_label_map(label_map)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    try:
        result = package_pipeline(model, output_dir, name, version, lang, scores, gold_scores, data_kind, training_data,
                                  corpus_report, base_model_licence, data_licence, licence, mode, build=build,
                                  rules=rules, training_text=training_text, config=config, label_map=label_kinds)
    except LeakingWheel as err:
        msg.fail(f"Wheel not clean: {err}", exits=1)
    except (ValueError, RuntimeError) as err:
        msg.fail(f"Cannot package {model}", f"{type(err).__name__}: {err}", exits=1)
    msg.good(f"Packaged {model} → {result}")
    print(result)


if __name__ == "__main__":
    typer.run(main)
