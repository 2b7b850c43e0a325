"""Package a trained pipeline as an installable wheel, with the de-identification components.

    python -m deid_synthesis.package_pipeline training/meddocan/ner_cpu/model-best packages \\
        --name es_deid_synth --version 0.1.0 --lang es --scores metrics/meddocan/ner_cpu.json

Adds `deid_rules` and `deid_transform` to the pipeline (if absent), writes the meta (scores
on real test data, this model and optionally the gold-trained one; the training data
described with its sizes; the licences of what went in) and runs `spacy package` with the
project's package-safe code files. A `__main__.py` is added before the wheel is built, so

    python -m es_deid_synth deidentify INPUT OUTPUT [--mode ...] [--n-process 2]

runs the production command (src/clinical_deid/deidentify.py) with the installed pipeline. The meta
holds only numbers and descriptions: no note text (the reports' `misaligned` examples and
the metrics' examples are left out).

The assembled pipeline's string store is pruned to what the pipeline needs
(scripts/prune_strings.py: labels and settings, no word of the training text), and the built
wheel is checked with scripts/wheel_check.py against the training text (`--training-text`:
the gold and synthetic DocBins the model learned from): the build fails if any training-text
word of 4+ characters outside the allow-list is in the wheel.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import spacy
import srsly
import typer
from spacy.cli.package import package
from spacy.util import get_minor_version_range
from wasabi import msg

from clinical_deid.deidentify import ensure_registered, prepare_pipeline
from deid_synthesis.prune_strings import prune_strings
from deid_synthesis.wheel_check import check_wheel, report

def test_scores(path: Path) -> Dict[str, float]:
    """The headline scores of a metrics/<dataset>/<config>.json, on real test data."""
    m = srsly.read_json(path)
    return {
        "ents_p": m["ents_strict"]["p"], "ents_r": m["ents_strict"]["r"], "ents_f": m["ents_strict"]["f"],
        "token_f": m["token"]["f"], "spans_merged_f": m["spans_merged"]["f"], "leak_score": m["leak"]["leak_score"],
    }


def corpus_sizes(path: Path) -> Dict[str, Dict[str, Any]]:
    """Documents, words and entities of the training data (no examples, no text): per split of a
    conversion report (corpus/<dataset>/report.json), or of a machine-annotated synthetic corpus
    (the annotate step's annotate.json)."""
    report = srsly.read_json(path)
    if "per_label" in report and "chunks" in report:  # scripts/annotate.py's report
        return {"synthetic": {
            "documents": report["documents"], "chunks": report["chunks"], "held_out_dev_documents": report.get("dev_documents"),
            "words": report["words"], "entities": report["entities"],
            "entities_per_label": {label: row["synthetic"] for label, row in report["per_label"].items()},
        }}
    keys = ("documents", "words", "entities", "entities_per_label")
    return {split: {k: r[k] for k in keys if k in r} for split, r in report.items() if isinstance(r, dict)}


def build_meta(nlp, name: str, version: str, lang: str, scores: Path, gold_scores: Optional[Path], data_kind: str,
               training_data: str, corpus_report: Optional[Path], base_model_licence: Optional[str],
               data_licence: str, licence: Optional[str], description: Optional[str]) -> Dict[str, Any]:
    performance: Dict[str, Any] = dict(test_scores(scores))
    if gold_scores is not None:
        performance.update({f"gold_{k}": v for k, v in test_scores(gold_scores).items()})
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
    rows = [("Strict P", "ents_p"), ("Strict R", "ents_r"), ("Strict F1", "ents_f"), ("Token F1", "token_f"),
            ("Merged-span F1", "spans_merged_f"), ("Leak score (lower is better)", "leak_score")]
    head = f"| Score | This model ({data_kind}) |" + (" Gold-trained |" if with_gold else "")
    lines = ["### Scores on real test data", "", head, "|---|---|" + ("---|" if with_gold else "")]
    for label, key in rows:
        line = f"| {label} | {performance[key]:.4f} |"
        lines.append(line + (f" {performance['gold_' + key]:.4f} |" if with_gold else ""))
    lines += ["", "Command line (installed with this package, from `clinical-deid`): "
              "`clinical-deid <package> INPUT OUTPUT [--mode redact|mask|pseudonymize]`."]
    return "\n".join(lines)


def build_wheel(package_dir: Path) -> Path:
    """`pip wheel` in the folder `spacy package --build none` wrote (setup.py there)."""
    dist = package_dir / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(package_dir)], check=True)
    return max(dist.glob("*.whl"), key=lambda p: p.stat().st_mtime)


class LeakingWheel(RuntimeError):
    """A built wheel holds words of the training text (scripts/wheel_check.py)."""


def package_texts(nlp) -> List[str]:
    """What the packager was told and wrote as settings (meta descriptions, licences, the
    config's paths): the wheel check allows their words."""
    meta = nlp.meta
    texts = [meta["name"], meta["version"], meta.get("description") or "", meta.get("license") or "",
             meta["performance"].get("evaluated_on", ""), meta["training_data"]["description"]]
    texts += [f"{source['name']} {source['license']}" for source in meta["sources"]]
    texts += [str(value) for value in nlp.config.get("paths", {}).values() if value is not None]
    return texts


def package_pipeline(model: Path, output_dir: Path, name: str, version: str, lang: str, scores: Path,
                     gold_scores: Optional[Path] = None, data_kind: str = "synthetic", training_data: str = "",
                     corpus_report: Optional[Path] = None, base_model_licence: Optional[str] = None,
                     data_licence: str = "CC BY 4.0", licence: Optional[str] = None, mode: str = "pseudonymize",
                     description: Optional[str] = None, build: str = "wheel", silent: bool = True,
                     rules: Optional[Path] = None, training_text: Optional[List[Path]] = None) -> Path:
    """Assemble, describe and package MODEL; return the wheel (build="wheel") or the package folder.
    rules: a JSON list of the deid_rules rules to run (scripts/rules_effect.py --rules-output).
    training_text: the .spacy / .jsonl text MODEL learned from; the wheel is checked against it
    (LeakingWheel if it holds any of its words outside the allow-list)."""
    ensure_registered()  # the project's tokenizer, before the pipeline loads
    nlp = prepare_pipeline(spacy.load(model), mode=mode, rule_names=srsly.read_json(rules) if rules else None)
    if nlp.lang != lang:
        raise ValueError(f"{model} is a '{nlp.lang}' pipeline, not '{lang}': check --lang")
    nlp.meta.clear()
    nlp.meta.update(build_meta(nlp, name, version, lang, scores, gold_scores, data_kind, training_data,
                               corpus_report, base_model_licence, data_licence, licence, description))
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        assembled = Path(tmp) / "pipeline"
        nlp.to_disk(assembled)
        # Models trained before train.py pruned, and strings the components added: only what
        # loading the pipeline needs goes into the package.
        prune_strings(assembled)
        licences = "\n".join(f"{s['name']}: {s['license']}" for s in nlp.meta["sources"])
        (assembled / "LICENSES_SOURCES").write_text(licences + "\n", encoding="utf-8")
        package(assembled, output_dir, name=nlp.meta["name"], version=version,
                create_sdist=False, create_wheel=False, force=True, silent=silent)
    package_name = f"{lang}_{nlp.meta['name']}"
    package_dir = output_dir / f"{package_name}-{version}"
    for stale in ("dist", "build", f"{package_name}.egg-info"):  # from an earlier build of this version
        shutil.rmtree(package_dir / stale, ignore_errors=True)
    if build != "wheel":
        return package_dir
    wheel = build_wheel(package_dir)
    if training_text:
        result = check_wheel(wheel, training_text, package_texts(nlp))
        if not report(result, wheel):
            wheel.unlink()  # no wheel to ship by mistake; --build none keeps the folder to inspect
            raise LeakingWheel(f"{wheel}: {result['findings']} training-text words in "
                               f"{len(result['per_file'])} files (python -m deid_synthesis.wheel_check)")
    return wheel


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
    rules: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="JSON list of the deid_rules rules to run (rules-effect's output); default: deid_rules' own"),
    training_text: List[Path] = typer.Option([], "--training-text", exists=True, dir_okay=False, help="Text MODEL learned from (.spacy, .jsonl; repeat): the wheel must hold none of its words"),
):
    """Package a trained pipeline with the de-identification components as a wheel."""
    if data_kind not in ("synthetic", "gold"):
        msg.fail(f"Unknown --data-kind {data_kind!r}: choose synthetic or gold", exits=1)
    if mode not in ("redact", "mask", "pseudonymize"):
        msg.fail(f"Unknown --mode {mode!r}: choose redact, mask or pseudonymize", exits=1)
    if build not in ("wheel", "none"):
        msg.fail(f"Unknown --build {build!r}: choose wheel or none", exits=1)
    if not name.isidentifier() or not name.startswith(f"{lang}_"):
        msg.fail(f"--name {name!r} must be a Python identifier starting with '{lang}_' (e.g. {lang}_deid_synth)", exits=1)
    if build == "wheel" and not training_text:
        msg.fail("--training-text is required to build a wheel: the training DocBins (.spacy) or notes (.jsonl) "
                 "the wheel is checked against", exits=1)
    try:
        result = package_pipeline(model, output_dir, name, version, lang, scores, gold_scores, data_kind, training_data,
                                  corpus_report, base_model_licence, data_licence, licence, mode, build=build,
                                  rules=rules, training_text=training_text)
    except LeakingWheel as e:
        msg.fail(f"Wheel not clean: {e}", exits=1)
    msg.good(f"Packaged {model} → {result}")
    print(result)


if __name__ == "__main__":
    typer.run(main)
