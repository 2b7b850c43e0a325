"""Package a trained NER as a de-identification product: assembled from a config, described, checked.

    python -m scripts.package_pipeline training/meddocan/ner_cpu/model-best packages \\
        --name es_deid_synth --version 0.1.0 --lang es --scores metrics/meddocan/ner_cpu.json

The product is declared in a config (configs/deid_es.cfg, configs/deid_sv.cfg): `tok2vec` and
`ner` sourced from the trained pipeline (`paths.ner_model`), the clinical tokenizer, and the
runtime's `deid_rules` and `deid_transform`. `spacy assemble` builds it, with the rules that
`rules-effect` kept (`--rules`) and the transform's mode as overrides; the assembled tokenizer
must be the one the NER was trained with. Then the meta is written (scores on real test data,
this model and optionally the gold-trained one; the training data described with its sizes;
the licences of what went in) and `spacy package` builds the wheel. The wheel carries weights
and config only: `spacy package` lists the runtime package (clinical-deid), found through its
entry points, as a requirement, and its `clinical-deid` command runs the installed product.
The meta holds only numbers and descriptions: no note text (the reports' `misaligned`
examples and the metrics' examples are left out).

The assembled pipeline's string store is pruned to what the pipeline needs
(deid_synthesis.prune_strings: labels and settings, no word of the training text), and the
built wheel is checked with deid_synthesis.wheel_check against the training text
(`--training-text`: the gold and synthetic DocBins the model learned from): the build fails if
any training-text term (a run of 4+ letters or digits) outside the allow-list is in the wheel.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import srsly
from spacy.cli.package import package
from spacy.util import get_minor_version_range, load_config
from wasabi import Printer

from clinical_deid.label_map import map_overrides, report_label_kinds

from deid_synthesis.prune_strings import prune_strings
from deid_synthesis.markdown import table
from deid_synthesis.wheel_check import check_wheel, report

ROOT = Path(__file__).resolve().parents[2]  # the project folder (src/deid_synthesis/ is two below)
MODES = ("redact", "mask", "pseudonymize")


def product_config(lang: str) -> Path:
    """The config a product of LANG is assembled from.

    lang (str): the pipeline's language (es, sv).
    RETURNS (Path): configs/deid_<lang>.cfg of the project.
    """
    return ROOT / "configs" / f"deid_{lang}.cfg"


def test_scores(path: Path) -> Dict[str, float]:
    """The headline scores of a metrics/<dataset>/<config>.json, on real test data.

    path (Path): the metrics file (deid_synthesis.evaluate's output).
    RETURNS (Dict[str, float]): strict P/R/F, token F1, merged-span F1 and the leak score.
    """
    metrics = srsly.read_json(path)
    strict = metrics["ents_strict"]
    return {
        "ents_p": strict["p"], "ents_r": strict["r"], "ents_f": strict["f"], "token_f": metrics["token"]["f"],
        "spans_merged_f": metrics["spans_merged"]["f"], "leak_score": metrics["leak"]["leak_score"],
    }


def corpus_sizes(path: Path) -> Dict[str, Dict[str, Any]]:
    """Documents, words and entities of the training data (no examples, no text).

    path (Path): a conversion report (corpus/<dataset>/report.json, one entry per split) or a
        machine-annotated synthetic corpus's report (the annotate step's annotate.json).
    RETURNS (Dict[str, Dict[str, Any]]): sizes per split ("synthetic" for an annotate report).
    """
    corpus_report = srsly.read_json(path)
    if "per_label" in corpus_report and "chunks" in corpus_report:  # deid_synthesis.annotate's report
        return {"synthetic": {
            "documents": corpus_report["documents"], "chunks": corpus_report["chunks"],
            "held_out_dev_documents": corpus_report.get("dev_documents"),
            "words": corpus_report["words"], "entities": corpus_report["entities"],
            "entities_per_label": {label: row["synthetic"] for label, row in corpus_report["per_label"].items()},
        }}
    keys = ("documents", "words", "entities", "entities_per_label")
    return {split: {key: sizes[key] for key in keys if key in sizes}
            for split, sizes in corpus_report.items() if isinstance(sizes, dict)}


def build_meta(nlp, name: str, version: str, lang: str, scores: Path, gold_scores: Optional[Path], data_kind: str,
               training_data: str, corpus_report: Optional[Path], base_model_licence: Optional[str],
               data_licence: str, licence: Optional[str], description: Optional[str]) -> Dict[str, Any]:
    """The package's meta.json: the pipeline's own meta (labels, components) with the product's
    name, description, licences, scores on real test data and training data sizes.

    nlp (Language): the assembled pipeline.
    RETURNS (Dict[str, Any]): the meta (see package_pipeline for the other arguments).
    """
    performance: Dict[str, Any] = dict(test_scores(scores))
    if gold_scores is not None:
        performance.update({f"gold_{key}": value for key, value in test_scores(gold_scores).items()})
    performance["evaluated_on"] = f"real test data: {scores.as_posix()}" + (
        f"; gold-trained model: {gold_scores.as_posix()}" if gold_scores else "")
    kind = "synthetic, machine-annotated notes" if data_kind == "synthetic" else "gold-annotated clinical notes"
    sources: List[Dict[str, str]] = [{"name": f"Training data: {training_data or kind}", "license": data_licence}]
    if base_model_licence:
        sources.append({"name": "Base model of the synthetic notes", "license": base_model_licence})
    sources.append({"name": "Faker (surrogates)", "license": "MIT"})
    meta = dict(nlp.meta)
    meta.update({
        "name": name.removeprefix(f"{lang}_"), "version": version, "lang": lang,
        "description": description or f"Clinical de-identification ({lang}): NER trained on {kind}, "
                                      "rules for structured PHI, and redaction / masking / pseudonymization "
                                      "(doc._.deidentified).",
        "license": licence or data_licence,
        "sources": sources,
        "performance": performance,
        "training_data": {"kind": data_kind, "description": training_data or kind,
                          "sizes": corpus_sizes(corpus_report) if corpus_report else {}},
        # `spacy package` adds the runtime (clinical-deid) from the config's registered pieces.
        "requirements": [f"spacy{get_minor_version_range(spacy.__version__)}"],
        "notes": readme_notes(performance, gold_scores is not None, data_kind),
    })
    return meta


def readme_notes(performance: Dict[str, Any], with_gold: bool, data_kind: str) -> str:
    """The scores table and the command line of the package's README.md (meta `notes`).

    performance (Dict[str, Any]): the meta's performance (gold_* keys when with_gold).
    with_gold (bool): add a column for the gold-trained model.
    data_kind (str): synthetic or gold, named in the column's head.
    RETURNS (str): Markdown.
    """
    rows = [("Strict P", "ents_p"), ("Strict R", "ents_r"), ("Strict F1", "ents_f"), ("Token F1", "token_f"),
            ("Merged-span F1", "spans_merged_f"), ("Leak score (lower is better)", "leak_score")]
    header = ["Score", f"This model ({data_kind})"] + (["Gold-trained"] if with_gold else [])
    body = [[label, f"{performance[key]:.4f}"] + ([f"{performance['gold_' + key]:.4f}"] if with_gold else [])
            for label, key in rows]
    lines = ["### Scores on real test data", "", table(header, body, ["l"] + ["r"] * (len(header) - 1)).rstrip("\n")]
    lines += ["", "Command line (installed with this package, from `clinical-deid`): "
              "`clinical-deid <package> INPUT OUTPUT [--mode redact|mask|pseudonymize]`."]
    return "\n".join(lines)


def check_sources(model: Path, config_path: Path, lang: str) -> None:
    """Fail early, naming the files, when MODEL cannot be assembled with CONFIG_PATH as LANG.

    model (Path): the trained pipeline the config sources its components from.
    config_path (Path): the product's config.
    lang (str): the language the product is for.
    """
    trained = load_config(Path(model) / "config.cfg", interpolate=False)["nlp"]
    product = load_config(config_path, interpolate=False)
    if trained["lang"] != lang:
        raise ValueError(f"{model} is a '{trained['lang']}' pipeline, not '{lang}': check --lang")
    if product["nlp"]["lang"] != lang:
        raise ValueError(f"{config_path} assembles a '{product['nlp']['lang']}' pipeline, not '{lang}': check --config")
    sourced = [name for name, block in product["components"].items() if "source" in block]
    missing = [name for name in sourced if name not in trained["pipeline"]]
    if missing:
        raise ValueError(f"{model} has no component {', '.join(missing)}, which {config_path.name} sources "
                         f"(its pipeline: {', '.join(trained['pipeline'])}): pass --config with one for it")


def assemble_overrides(model: Path, rules: Optional[Path], mode: str,
                       label_map: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The config overrides of a product: the trained model, the transform's mode and,
    when given, the rules deid_rules runs and the transform's label map.

    model (Path): the trained pipeline (paths.ner_model).
    rules (Optional[Path]): a JSON list of rule names (rules-effect's output), or None for the config's.
    mode (str): redact, mask or pseudonymize.
    label_map (Optional[Dict[str, str]]): label -> surrogate kind over the preset (checked).
    RETURNS (Dict[str, Any]): dotted config keys and their values.
    """
    overrides: Dict[str, Any] = {"paths.ner_model": str(model), "components.deid_transform.mode": mode}
    overrides.update(map_overrides(label_map or {}))
    if rules is not None:
        rule_names = srsly.read_json(rules)
        if not isinstance(rule_names, list) or not all(isinstance(rule, str) for rule in rule_names):
            raise ValueError(f"{rules}: expected a JSON list of rule names (rules-effect's --rules-output)")
        overrides["components.deid_rules.rules"] = rule_names
    return overrides


def assemble(config_path: Path, output: Path, overrides: Dict[str, Any], silent: bool = True) -> None:
    """`python -m spacy assemble CONFIG_PATH OUTPUT --key value ...`: the product as the config
    declares it (a subprocess: exactly the command anyone can run; values passed as JSON).

    config_path (Path): the product's config.
    output (Path): the folder to write the assembled pipeline to.
    overrides (Dict[str, Any]): dotted config keys and their values.
    silent (bool): capture spaCy's messages (shown only when the command fails).
    """
    command = [sys.executable, "-m", "spacy", "assemble", str(config_path), str(output)]
    for key, value in overrides.items():
        command += [f"--{key}", json.dumps(value)]
    done = subprocess.run(command, capture_output=silent, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"spacy assemble {config_path} failed (exit {done.returncode})"
                           + (f":\n{done.stdout[-2000:]}{done.stderr[-2000:]}" if silent else ""))


def check_tokenizer(assembled: Path, model: Path, config_path: Path) -> None:
    """The assembled tokenizer must be the one MODEL was trained with (same settings, saved
    the same way): a config whose tokenizer differs would give the NER other tokens.

    assembled (Path): the pipeline spacy assemble wrote.
    model (Path): the trained pipeline.
    config_path (Path): the product's config (named in the error).
    """
    if (Path(assembled) / "tokenizer").read_bytes() != (Path(model) / "tokenizer").read_bytes():
        raise ValueError(f"the tokenizer of {config_path} is not the one {model} was trained with: "
                         "make [nlp.tokenizer] match the training config's")


def build_wheel(package_dir: Path) -> Path:
    """`pip wheel` in the folder `spacy package --build none` wrote (setup.py there).

    package_dir (Path): the package folder.
    RETURNS (Path): the wheel built.
    """
    dist = package_dir / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(package_dir)], check=True)
    return max(dist.glob("*.whl"), key=lambda path: path.stat().st_mtime)


class LeakingWheel(RuntimeError):
    """A built wheel holds terms of the training text (deid_synthesis.wheel_check)."""


def package_texts(nlp) -> List[str]:
    """What the packager was told and wrote as settings (meta descriptions, licences, the
    config's paths): the wheel check allows their terms.

    nlp (Language): the pipeline with its package meta.
    RETURNS (List[str]): the texts.
    """
    meta = nlp.meta
    texts = [meta["name"], meta["version"], meta.get("description") or "", meta.get("license") or "",
             meta["performance"].get("evaluated_on", ""), meta["training_data"]["description"]]
    texts += [f"{source['name']} {source['license']}" for source in meta["sources"]]
    texts += [str(value) for value in nlp.config.get("paths", {}).values() if value is not None]
    return texts


def write_package(nlp, pipeline_dir: Path, output_dir: Path, version: str, silent: bool) -> Path:
    """Save NLP pruned, with its sources' licences, and run `spacy package` (no build) on it.

    nlp (Language): the assembled pipeline with its package meta.
    pipeline_dir (Path): a scratch folder to save the pipeline to.
    output_dir (Path): the folder spacy package writes the package folder in.
    version (str): the package version.
    silent (bool): keep spacy package quiet.
    RETURNS (Path): the package folder (setup.py there), cleared of earlier builds.
    """
    nlp.to_disk(pipeline_dir)
    # Strings the sourced components brought (every word of the training text, for a model
    # trained before train.py pruned) and those the components added: only what loading the
    # pipeline needs goes into the package.
    prune_strings(pipeline_dir)
    licences = "\n".join(f"{source['name']}: {source['license']}" for source in nlp.meta["sources"])
    (pipeline_dir / "LICENSES_SOURCES").write_text(licences + "\n", encoding="utf-8")
    package(pipeline_dir, output_dir, name=nlp.meta["name"], version=version,
            create_sdist=False, create_wheel=False, force=True, silent=silent)
    package_name = f"{nlp.lang}_{nlp.meta['name']}"
    package_dir = output_dir / f"{package_name}-{version}"
    for stale in ("dist", "build", f"{package_name}.egg-info"):  # from an earlier build of this version
        shutil.rmtree(package_dir / stale, ignore_errors=True)
    return package_dir


def package_pipeline(model: Path, output_dir: Path, name: str, version: str, lang: str, scores: Path,
                     gold_scores: Optional[Path] = None, data_kind: str = "synthetic", training_data: str = "",
                     corpus_report: Optional[Path] = None, base_model_licence: Optional[str] = None,
                     data_licence: str = "CC BY 4.0", licence: Optional[str] = None, mode: str = "pseudonymize",
                     description: Optional[str] = None, build: str = "wheel", silent: bool = True,
                     rules: Optional[Path] = None, training_text: Optional[List[Path]] = None,
                     config: Optional[Path] = None, label_map: Optional[Dict[str, str]] = None) -> Path:
    """Assemble the product of MODEL from its config, describe and package it.

    model (Path): the trained pipeline (model-best) whose tok2vec and ner the config sources.
    output_dir (Path): where the package folder goes (packages/).
    rules (Optional[Path]): a JSON list of the deid_rules rules to run (rules-effect's --rules-output).
    training_text (Optional[List[Path]]): the .spacy / .jsonl text MODEL learned from; the wheel is
        checked against it (LeakingWheel if it holds any of its terms outside the allow-list).
    config (Optional[Path]): the product's config; default configs/deid_<lang>.cfg.
    label_map (Optional[Dict[str, str]]): label -> surrogate kind over the preset (deid_transform's
        label_map); what each label turns into is printed.
    RETURNS (Path): the wheel (build="wheel") or the package folder (build="none").
    The other arguments describe the product in its meta (see build_meta and the CLI's help).
    """
    config_path = Path(config) if config is not None else product_config(lang)
    check_sources(model, config_path, lang)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        assembled = Path(tmp) / "assembled"
        assemble(config_path, assembled, assemble_overrides(model, rules, mode, label_map), silent=silent)
        check_tokenizer(assembled, model, config_path)
        nlp = spacy.load(assembled)
        report_label_kinds(nlp, Printer())
        meta = build_meta(nlp, name, version, lang, scores, gold_scores, data_kind, training_data,
                          corpus_report, base_model_licence, data_licence, licence, description)
        nlp.meta.clear()
        nlp.meta.update(meta)
        package_dir = write_package(nlp, Path(tmp) / "pipeline", output_dir, version, silent)
    if build != "wheel":
        return package_dir
    wheel = build_wheel(package_dir)
    if training_text:
        result = check_wheel(wheel, training_text, package_texts(nlp))
        if not report(result, wheel):
            wheel.unlink()  # no wheel to ship by mistake; --build none keeps the folder to inspect
            raise LeakingWheel(f"{wheel}: {result['findings']} training-text terms in "
                               f"{len(result['per_file'])} files (python -m scripts.wheel_check)")
    return wheel
