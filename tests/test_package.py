"""The product as users get it: a wheel built by scripts/package_pipeline.py (assembled from
configs/deid_<lang>.cfg with `spacy assemble`; weights and config only), installed with pip into a fresh virtual environment beside the runtime package it
requires (clinical-deid), loaded with `spacy.load` and run with the `clinical-deid` command."""
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import srsly
from spacy.symbols import IDS

from deid_synthesis.corpus.convert import convert
from deid_synthesis.package_pipeline import (LeakingWheel, assemble_overrides, check_sources, corpus_sizes,
                                             package_pipeline)
from deid_synthesis.train import timed_train
from deid_synthesis.wheel_check import check_wheel, terms

ROOT = Path(__file__).resolve().parent.parent


def annotated(text, *entities):
    """A note and its spans, found by their text: (text, [(start, end, label)])."""
    return text, [(text.index(e), text.index(e) + len(e), label) for e, label in entities]


# Each note has an e-mail and a date, which the rules find even when a 4-step NER finds nothing.
NOTES = {
    "es": [
        annotated("Nombre: Ana García López. Edad: 45 años. Correo: ana.garcia@example.com. Alta el 12/03/2019.",
                  ("Ana García López", "NOMBRE_SUJETO_ASISTENCIA"), ("45 años", "EDAD_SUJETO_ASISTENCIA"),
                  ("ana.garcia@example.com", "CORREO_ELECTRONICO"), ("12/03/2019", "FECHAS")),
        annotated("Paciente remitido al Hospital Clínico de Madrid el 02/05/2020. Contacto: luis.perez@example.org.",
                  ("Hospital Clínico de Madrid", "HOSPITAL"), ("02/05/2020", "FECHAS"),
                  ("luis.perez@example.org", "CORREO_ELECTRONICO")),
    ],
    "sv": [
        annotated("Patienten Anna Svensson, 19121212-1212, kom till Karolinska sjukhuset i Solna den 2019-03-12. "
                  "E-post: anna.svensson@example.se.",
                  ("Anna Svensson", "PER"), ("Karolinska sjukhuset", "ORG"), ("Solna", "LOC")),
        annotated("Remiss från Lars Berg i Uppsala den 2020-05-02. Kontakt: lars.berg@example.org.",
                  ("Lars Berg", "PER"), ("Uppsala", "LOC")),
    ],
}
NAMES = {lang: f"{lang}_deid_synth" for lang in NOTES}
# The rules each package runs (as rules-effect would choose them).
RULES = {"es": ["EMAIL", "DATE", "PHONE", "POSTCODE"], "sv": ["EMAIL", "DATE", "PERSONNUMMER"]}
SCORES = {"ents_strict": {"p": 0.9, "r": 0.8, "f": 0.847}, "token": {"f": 0.9}, "spans_merged": {"f": 0.88},
          "leak": {"leak_score": 0.02, "missed": 3}}


def unprune(model: Path, texts) -> None:
    """Put the notes' words back into a model's string store, as `spacy train` saved them
    before train.py pruned: package_pipeline must prune what it packages itself."""
    strings = model / "vocab" / "strings.json"
    srsly.write_json(strings, sorted(set(srsly.read_json(strings)) | {w for t in texts for w in t.split()}))


def build_wheel(folder: Path, lang: str, **kwargs) -> Path:
    """A 4-step pipeline trained on six notes of `lang`, with its training words put back
    into its strings, packaged as a wheel and checked against its notes (about 10 s)."""
    notes = NOTES[lang]
    rows = [{"id": str(i), "text": notes[i % 2][0], "spans": [{"start": s, "end": e, "label": l} for s, e, l in notes[i % 2][1]]}
            for i in range(6)]
    srsly.write_jsonl(folder / "notes.jsonl", rows)
    report = convert(folder / "notes.jsonl", folder / "train.spacy", "jsonl", lang)
    assert not report["misaligned"]
    srsly.write_json(folder / "report.json", {"train": report})
    overrides = {"paths.train": str(folder / "train.spacy"), "paths.dev": str(folder / "train.spacy"),
                 "training.max_steps": 4, "training.eval_frequency": 2, "nlp.lang": lang}
    timed_train(ROOT / "configs/ner_cpu.cfg", folder / "model", overrides)
    srsly.write_json(folder / "synthetic.json", SCORES)
    srsly.write_json(folder / "gold.json", {**SCORES, "ents_strict": {"p": 0.95, "r": 0.9, "f": 0.924}})
    srsly.write_json(folder / "rules.json", RULES[lang])
    unprune(folder / "model/model-best", [text for text, _ in notes])
    return package_pipeline(folder / "model/model-best", folder / "packages", NAMES[lang], "0.1.0", lang,
                            folder / "synthetic.json", gold_scores=folder / "gold.json", data_kind="synthetic",
                            training_data="Six synthetic test notes", corpus_report=folder / "report.json",
                            base_model_licence="Gemma Terms of Use", data_licence="CC BY 4.0",
                            rules=folder / "rules.json", training_text=[folder / "train.spacy"], **kwargs)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """The Spanish and the Swedish product, as `spacy project run packages` builds them."""
    return {lang: build_wheel(tmp_path_factory.mktemp(lang), lang) for lang in NOTES}


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_wheel_holds_the_meta_no_code_and_no_note_text(wheels, lang):
    wheel, NAME = wheels[lang], NAMES[lang]
    assert wheel.name == f"{NAME}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = json.loads(z.read(f"{NAME}/meta.json"))
        config = z.read(next(n for n in names if n.endswith("/config.cfg"))).decode()
        raw = b"".join(z.read(n) for n in names if n.endswith(("meta.json", "README.md", "LICENSES_SOURCES")))
    # Only the loader spacy package writes: the runtime is a requirement, not copied files.
    assert [n for n in names if n.endswith(".py")] == [f"{NAME}/__init__.py"]
    assert meta["pipeline"] == ["tok2vec", "ner", "deid_rules", "deid_transform"]
    assert f"rules = {json.dumps(RULES[lang])}".replace(" ", "") in config.replace(" ", "")
    assert meta["performance"]["ents_f"] == 0.847 and meta["performance"]["gold_ents_f"] == 0.924
    assert meta["performance"]["leak_score"] == 0.02
    assert meta["training_data"]["kind"] == "synthetic"
    assert meta["training_data"]["sizes"]["train"]["documents"] == 6
    assert {s["license"] for s in meta["sources"]} >= {"Gemma Terms of Use", "CC BY 4.0"}
    assert any(r.startswith("spacy>=") for r in meta["requirements"])
    assert "clinical-deid>=0.1.0,<0.2.0" in meta["requirements"]  # found by spacy package from the entry points
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: clinical-deid<0.2.0,>=0.1.0" in metadata
    for text, _ in NOTES[lang]:  # never any note text in what describes the package
        assert text[:20].encode() not in raw and b"@example." not in raw


def product_dir(wheel: Path) -> Path:
    """The pipeline folder `spacy package` wrote beside the wheel (packages/<name>-<version>/<name>/...)."""
    name = wheel.name.split("-")[0]
    return wheel.parents[1] / name / f"{name}-0.1.0"


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_the_assembled_product_is_the_trained_model_with_the_components_added(wheels, lang):
    """configs/deid_<lang>.cfg declares what add_pipe calls built before: same tokens, entities, output."""
    import spacy

    model = wheels[lang].parents[3] / "model/model-best"
    by_hand = spacy.load(model)
    by_hand.add_pipe("deid_rules", config={"rules": RULES[lang]})
    by_hand.add_pipe("deid_transform", config={"mode": "pseudonymize"})
    product = spacy.load(product_dir(wheels[lang]))
    assert product.pipe_names == by_hand.pipe_names
    assert product.config["components"]["deid_rules"]["rules"] == RULES[lang]  # rules-effect's list, an override
    for text, _ in NOTES[lang]:
        expected, got = by_hand(text), product(text)
        assert [t.text for t in got] == [t.text for t in expected]
        assert [(e.start_char, e.end_char, e.label_) for e in got.ents] == [
            (e.start_char, e.end_char, e.label_) for e in expected.ents]
        assert got._.deidentified == expected._.deidentified


def test_product_configs_source_the_ner_and_use_its_tokenizer():
    from spacy.util import load_config

    training = load_config(ROOT / "configs/ner_cpu.cfg", interpolate=False)
    for lang in NOTES:
        config = load_config(ROOT / f"configs/deid_{lang}.cfg", interpolate=False)
        assert config["nlp"]["lang"] == lang
        assert config["nlp"]["pipeline"] == ["tok2vec", "ner", "deid_rules", "deid_transform"]
        assert {name: block.get("source") for name, block in config["components"].items()} == {
            "tok2vec": "${paths.ner_model}", "ner": "${paths.ner_model}", "deid_rules": None, "deid_transform": None}
        assert config["nlp"]["tokenizer"] == training["nlp"]["tokenizer"]


def test_a_model_the_config_cannot_source_from_is_refused(tmp_path):
    def model(lang, pipeline):
        folder = tmp_path / f"{lang}-{'-'.join(pipeline)}"
        folder.mkdir()
        (folder / "config.cfg").write_text(f'[nlp]\nlang = "{lang}"\npipeline = {json.dumps(pipeline)}\n')
        return folder

    trf = model("es", ["transformer", "ner"])
    with pytest.raises(ValueError, match="no component tok2vec, which deid_es.cfg sources"):
        check_sources(trf, ROOT / "configs/deid_es.cfg", "es")
    with pytest.raises(ValueError, match="not 'sv': check --lang"):
        check_sources(trf, ROOT / "configs/deid_sv.cfg", "sv")
    with pytest.raises(ValueError, match="check --config"):
        check_sources(model("sv", ["tok2vec", "ner"]), ROOT / "configs/deid_es.cfg", "sv")
    check_sources(model("es", ["tok2vec", "ner"]), ROOT / "configs/deid_es.cfg", "es")


def test_rules_and_mode_are_overrides_of_the_config(tmp_path):
    srsly.write_json(tmp_path / "rules.json", ["EMAIL", "DATE"])
    assert assemble_overrides(Path("m"), tmp_path / "rules.json", "redact") == {
        "paths.ner_model": "m", "components.deid_transform.mode": "redact",
        "components.deid_rules.rules": ["EMAIL", "DATE"]}
    assert "components.deid_rules.rules" not in assemble_overrides(Path("m"), None, "mask")
    srsly.write_json(tmp_path / "bad.json", {"EMAIL": True})
    with pytest.raises(ValueError, match="JSON list of rule names"):
        assemble_overrides(Path("m"), tmp_path / "bad.json", "redact")


def test_a_label_map_is_an_override_of_the_transform(wheels, tmp_path, capsys):
    """--label-map: the product's deid_transform carries the map; what each label turns into is printed."""
    import spacy

    assert assemble_overrides(Path("m"), None, "mask", {"PER": "keep"})["components.deid_transform.label_map"] == {
        "PER": "keep"}
    assert "components.deid_transform.label_map" not in assemble_overrides(Path("m"), None, "mask", {})
    folder = wheels["sv"].parents[3]
    package_dir = package_pipeline(folder / "model/model-best", tmp_path / "packages", "sv_mapped", "0.1.0", "sv",
                                   folder / "synthetic.json", build="none", label_map={"MISC": "keep", "LOC": "territory"})
    product = spacy.load(package_dir / "sv_mapped" / "sv_mapped-0.1.0")
    assert product.get_pipe("deid_transform").kind_source("LOC") == ("territory", "map")
    printed = " ".join(capsys.readouterr().out.split())
    assert "What each label turns into (pseudonymize)" in printed and "territory map" in printed
    from typer.testing import CliRunner
    import typer
    from scripts.package_pipeline import main

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, [str(folder / "model/model-best"), str(tmp_path / "p"), "--name", "sv_x", "--lang",
                                      "sv", "--scores", str(folder / "synthetic.json"), "--build", "none",
                                      "--label-map", '{"LOC": "town"}'])
    assert result.exit_code == 1 and "label 'LOC' has kind 'town'); valid kinds:" in " ".join(result.output.split())


def test_a_config_with_another_tokenizer_than_the_models_is_refused(wheels, tmp_path):
    folder = wheels["es"].parents[3]
    config = (ROOT / "configs/deid_es.cfg").read_text(encoding="utf-8")
    tokenizer = '@tokenizers = "deid.clinical_tokenizer.v1"\n'
    assert tokenizer in config
    (tmp_path / "other.cfg").write_text(config.replace(tokenizer, tokenizer + "split_camel_case = false\n"))
    with pytest.raises(ValueError, match="tokenizer of .*other.cfg is not the one"):
        package_pipeline(folder / "model/model-best", tmp_path / "packages", "es_other", "0.1.0", "es",
                         folder / "synthetic.json", build="none", config=tmp_path / "other.cfg")
    assert not (tmp_path / "packages" / "es_other-0.1.0").exists()


def test_synthetic_training_data_sizes_come_from_the_annotate_report(tmp_path):
    report = {"documents": 10, "chunks": 12, "dev_documents": 1, "words": 900, "entities": 40, "tokens": 1000,
              "per_label": {"PER": {"synthetic": 30, "gold": 20}, "LOC": {"synthetic": 10, "gold": 15}}}
    srsly.write_json(tmp_path / "annotate.json", report)
    sizes = corpus_sizes(tmp_path / "annotate.json")
    assert sizes == {"synthetic": {"documents": 10, "chunks": 12, "held_out_dev_documents": 1, "words": 900,
                                   "entities": 40, "entities_per_label": {"PER": 30, "LOC": 10}}}


@pytest.mark.slow
def test_both_wheels_install_into_a_fresh_venv_and_deidentify(wheels, tmp_path):
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The runtime from this checkout; spaCy and Faker from the package index (about 30 s with pip's cache).
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT),
                          *(str(w) for w in wheels.values())], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    print(f"venv + pip install in {time.perf_counter() - start:.1f} s")
    script = textwrap.dedent("""
        import importlib.util, json, sys, spacy
        assert importlib.util.find_spec("torch") is None  # the runtime does not pull it in
        name, texts = sys.argv[1], json.loads(sys.argv[2])
        nlp = spacy.load(name)
        out = []
        for text, doc in zip(texts, nlp.pipe(texts, batch_size=2)):
            out.append({"ents": [(e.text, e.label_) for e in doc.ents], "deidentified": doc._.deidentified,
                        "pipe_names": nlp.pipe_names, "lang": nlp.lang, "file": spacy.util.get_package_path(name).as_posix()})
        print(json.dumps(out))
    """)
    for lang, name in NAMES.items():
        texts = [text for text, _ in NOTES[lang]]
        result = subprocess.run([python, "-c", script, name, json.dumps(texts)], check=True, env=env, cwd=tmp_path,
                                capture_output=True, text=True)
        docs = json.loads(result.stdout.strip().splitlines()[-1])
        for text, doc in zip(texts, docs):
            assert doc["file"].startswith(str(venv))  # installed into the fresh venv, not found elsewhere
            assert doc["lang"] == lang and doc["pipe_names"] == ["tok2vec", "ner", "deid_rules", "deid_transform"]
            assert doc["ents"], "the rules find the e-mail address and the date"
            assert doc["deidentified"] != text and "@example." not in doc["deidentified"]
            for ent_text, label in doc["ents"]:
                if label != "SEXO_SUJETO_ASISTENCIA":  # one-letter values may recur by chance
                    assert ent_text not in doc["deidentified"]

        notes, out = tmp_path / f"notes-{lang}", tmp_path / f"out-{lang}"
        notes.mkdir()
        for i, text in enumerate(texts):
            (notes / f"note{i}.txt").write_text(text, encoding="utf-8")
        run = subprocess.run([str(venv / "bin" / "clinical-deid"), name, str(notes), str(out), "--mode", "redact",
                              "--spans-output", str(tmp_path / f"spans-{lang}.jsonl")],
                             env=env, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
        for i, text in enumerate(texts):
            redacted = (out / f"note{i}.txt").read_text(encoding="utf-8")
            assert redacted != text and "example" not in redacted and "[" in redacted
        assert len(list(srsly.read_jsonl(tmp_path / f"spans-{lang}.jsonl"))) == len(texts)


def test_importing_the_runtime_imports_no_torch():
    code = "import sys, clinical_deid; assert 'torch' not in sys.modules and 'spacy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def training_terms_of(wheel: Path):
    return set().union(*(terms(text) for text, _ in NOTES[wheel.name[:2]]))


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_wheel_holds_no_training_word_outside_the_allow_list(wheels, lang):
    wheel = wheels[lang]
    result = check_wheel(wheel, [wheel.parents[3] / "train.spacy"])
    assert result["findings"] == 0
    assert result["shared_terms"] == (4 if lang == "es" else 0)  # HOSPITAL, Nombre, Edad, Correo: label words
    with zipfile.ZipFile(wheel) as z:
        strings = json.loads(z.read(f"{NAMES[lang]}/{NAMES[lang]}-0.1.0/vocab/strings.json"))
    labels = {label for _, spans in NOTES[lang] for *_, label in spans}
    assert set(strings) >= labels - set(IDS) and not terms(" ".join(strings)) & (training_terms_of(wheel) - terms(" ".join(labels)))


def with_file(wheel: Path, out: Path, name: str, data: bytes) -> Path:
    """A copy of WHEEL with the file NAME replaced by DATA."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, data if item.filename == name else src.read(item.filename))
    return out


def run_wheel_check(*args):
    from typer.testing import CliRunner
    import typer

    from scripts.wheel_check import main

    app = typer.Typer()
    app.command()(main)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_wheel_check_finds_training_terms_and_names_files_not_terms(wheels, tmp_path):
    wheel = wheels["es"]
    train = wheel.parents[3] / "train.spacy"
    strings_name = f"{NAMES['es']}/{NAMES['es']}-0.1.0/vocab/strings.json"
    leaky = with_file(wheel, tmp_path / wheel.name, strings_name,
                      json.dumps(["HOSPITAL", "Madrid", "lópez", "Remitido"]).encode())
    result = check_wheel(leaky, [train])
    assert result["per_file"][strings_name] == 3 and {"lópez", "madrid", "remitido"} <= set(result["terms"])
    run = run_wheel_check(leaky, train)
    assert run.exit_code == 1 and strings_name in run.output and "3 training-text terms" in run.output
    assert not {"madrid", "remitido", "lópez"} & terms(run.output.casefold())  # counts and files, never terms
    shown = run_wheel_check(leaky, train, "--show-words")
    assert shown.exit_code == 1 and "madrid" in shown.output
    # In a weights file too (msgpack nested in msgpack), and in a file of a format it does not know.
    model_name = f"{NAMES['es']}/{NAMES['es']}-0.1.0/ner/moves"
    with zipfile.ZipFile(wheel) as z:
        moves = srsly.msgpack_loads(z.read(model_name))
    moves["cfg"] = {"note": srsly.msgpack_dumps({"x": "Paciente remitido"})}
    hidden = with_file(wheel, tmp_path / "moves.whl", model_name, srsly.msgpack_dumps(moves))
    assert check_wheel(hidden, [train])["per_file"][model_name] == 2
    odd = with_file(wheel, tmp_path / "odd.whl", model_name, b"\x00\xff\x13Remitido\x00\x01")
    assert check_wheel(odd, [train])["per_file"][model_name] == 1
    assert run_wheel_check(wheel, train).exit_code == 0


def test_wheel_check_reads_jsonl_notes_and_fails_cleanly(wheels, tmp_path):
    wheel = wheels["es"]
    srsly.write_jsonl(tmp_path / "notes.jsonl", [{"id": "1", "text": "deid_rules deid_transform"}])
    result = check_wheel(wheel, [tmp_path / "notes.jsonl"])
    assert result["training_terms"] == 3 and result["shared_terms"] == 3 and result["findings"] == 0
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json Ana García\n', encoding="utf-8")
    run = run_wheel_check(wheel, tmp_path / "bad.jsonl")
    assert run.exit_code == 1 and "bad.jsonl:2:" in run.output and "García" not in run.output


def test_a_leaking_wheel_fails_the_build_and_is_removed(tmp_path, monkeypatch):
    import deid_synthesis.package_pipeline as package_module

    monkeypatch.setattr(package_module, "prune_strings", lambda model: {})  # as before this check
    with pytest.raises(LeakingWheel, match="training-text terms"):
        build_wheel(tmp_path, "es")
    assert not list((tmp_path / "packages").rglob("*.whl"))
