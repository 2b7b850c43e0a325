"""Check that a built wheel holds no term of the text its model learned from.

    python -m scripts.wheel_check packages/es_deid_synth-0.1.0/dist/es_deid_synth-0.1.0-py3-none-any.whl \\
        corpus/meddocan/train.spacy corpus/meddocan/dev.spacy synthetic/meddocan/v100-long/samples.jsonl

Reads every file of the wheel (a zip) and collects its terms: runs of letters and digits
(`_` splits, as in `es_deid_synth`), casefolded, of at least 4 characters. (Distinct strings,
not the project's measure of words, `clinical_deid.tokenizer.count_words`.) How a file is read
depends on what it is, so that numbers and weights are not mistaken for terms:

- JSON (meta.json, strings.json, cfg) and msgpack (the tokenizer, the models' weights files):
  the strings only (keys and values, nested msgpack included); numbers and arrays of numbers
  are no text;
- `config.cfg`: the strings of the parsed config (settings' names and string values);
- RECORD (the wheel's list of files): the paths, not the hashes and sizes;
- anything else (code, README.md, METADATA, LICENSES_SOURCES, unknown binaries): its text
  as UTF-8 (undecodable bytes are dropped).

The wheel ships no project code (the runtime is its `clinical-deid` requirement), so every
file counts.
A training-text term found in the wheel is a finding unless it is in the allow-list, which holds
only what the wheel may say whatever the training text (see `allowed_terms`): the package
templates (deid_synthesis.package_pipeline), the training and product configs, spaCy's package template, the
files of a blank pipeline of the language and of an untrained pipeline of the project's
config (serialization keys, layer names), the project's components' names, default settings
and rule names, the NER labels, the numbers the meta reports (as README.md renders them),
standard wheel-metadata terms and the texts the packager was given (`--allow-text`: name,
description, licences, the config's paths). The training text is read from DocBins
(.spacy) and JSONL (.jsonl, the `text` field). Output: counts and file names, never the
terms (`--show-words` prints them: for a private check only). Exit 1 on any finding.
"""
from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Set

import spacy
import srsly
from thinc.api import Config
from wasabi import msg

from clinical_deid.io import read_docbin, read_jsonl

ROOT = Path(__file__).resolve().parents[2]  # the project folder (src/deid_synthesis/ is two below)
MIN_LENGTH = 4
WORD = re.compile(r"[^\W_]+")
# Files whose terms the wheel may hold anywhere: the templates package_pipeline writes the
# meta and README from, the training configs and the products' configs. (The wheel ships no
# code of the project: the runtime is the clinical-deid requirement, so every file is checked.)
PROJECT_TEXT = ["src/deid_synthesis/package_pipeline.py", "configs/ner_cpu.cfg", "configs/ner_trf.cfg",
                "configs/deid_es.cfg", "configs/deid_sv.cfg"]
# The project's components, whose default settings (and label names) the config holds.
PROJECT_FACTORIES = ["deid_rules", "deid_transform"]
# Words of the wheel format itself (METADATA, WHEEL, entry_points.txt, top_level.txt), as
# setuptools and wheel write them.
WHEEL_FORMAT = """Metadata-Version Name Version Summary Home-page Author Author-email License Requires-Python
Requires-Dist Provides-Extra Description-Content-Type Description Classifier Platform Dynamic License-File
Wheel-Version Generator bdist_wheel setuptools Root-Is-Purelib true false Tag py3 none any
spacy_models console_scripts text markdown plain UNKNOWN"""


def terms(text: str) -> Set[str]:
    """The casefolded terms (runs of letters and digits) of MIN_LENGTH or more characters of a text."""
    return {w for w in (m.group().casefold() for m in WORD.finditer(text)) if len(w) >= MIN_LENGTH}


def structured_strings(value: Any) -> Iterator[str]:
    """Every string of a decoded JSON / msgpack value, keys included; bytes are decoded in
    turn (thinc nests msgpack in msgpack); numbers and numeric arrays are no text."""
    if isinstance(value, str):
        if value[:1] in ("{", "[") and value[-1:] in ("}", "]"):  # JSON in a string (ner/moves' labels)
            try:
                yield from structured_strings(json.loads(value))
                return
            except ValueError:
                pass
        yield value
    elif isinstance(value, (bytes, bytearray)):
        yield from blob_strings(bytes(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from structured_strings(key)
            yield from structured_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from structured_strings(item)
    elif hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "USO":  # numpy array of text
        for item in value.ravel().tolist():
            yield from structured_strings(item)


def blob_strings(data: bytes) -> Iterator[str]:
    """The strings of bytes of unknown format: JSON, then msgpack, then plain text."""
    if not data:
        return
    try:
        yield from structured_strings(json.loads(data.decode("utf-8")))
        return
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        decoded = srsly.msgpack_loads(data)
    except Exception:  # noqa: BLE001  (any msgpack error: the bytes are not msgpack)
        decoded = None
    if isinstance(decoded, (dict, list, str, bytes)) or (hasattr(decoded, "dtype")):
        yield from structured_strings(decoded)
        return
    if data.startswith(b"\x93NUMPY"):
        yield from npy_strings(data)
        return
    yield data.decode("utf-8", "ignore")


def npy_strings(data: bytes) -> Iterator[str]:
    """A .npy file (the vectors and their keys): text only when its dtype is text."""
    import numpy

    try:
        array = numpy.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:
        yield data.decode("utf-8", "ignore")
        return
    yield from structured_strings(array)


def file_strings(name: str, data: bytes) -> Iterator[str]:
    """The strings of one file of the wheel, read by what the file is (see the module doc)."""
    yield name
    base = name.rsplit("/", 1)[-1]
    if base == "RECORD" and ".dist-info/" in name:
        for line in data.decode("utf-8", "ignore").splitlines():
            yield line.rsplit(",", 2)[0]
    elif base == "config.cfg":
        try:
            yield from structured_strings(Config().from_str(data.decode("utf-8"), interpolate=False))
        except Exception:  # noqa: BLE001  (a config thinc cannot parse: read it as text)
            yield data.decode("utf-8", "ignore")
    elif base.endswith((".py", ".md", ".txt", ".cfg")) or base in ("METADATA", "WHEEL", "LICENSES_SOURCES"):
        yield data.decode("utf-8", "ignore")
    else:
        yield from blob_strings(data)


def wheel_terms(wheel: Path) -> Dict[str, Set[str]]:
    """The terms of each file of a wheel (file name -> terms)."""
    found: Dict[str, Set[str]] = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith("/"):
                continue
            data = z.read(name)
            strings = file_strings(name, data)
            found[name] = set().union(*(terms(s) for s in strings))
    return found


def training_texts(path: Path) -> Iterator[str]:
    """The texts of a DocBin (.spacy) or of a JSONL file's `text` fields.

    path (Path): the training text.
    RETURNS (Iterator[str]): its texts. Raises DataError (a ValueError) naming the file and line,
        never the text, for an unreadable file or line.
    """
    path = Path(path)
    if path.suffix == ".spacy":
        for doc in read_docbin(path):
            yield doc.text
    elif path.suffix == ".jsonl":
        for _where, _line, record in read_jsonl(path):
            yield record["text"]
    else:
        raise ValueError(f"{path}: training text must be a .spacy DocBin or a .jsonl file")


def training_terms(paths: Iterable[Path]) -> Set[str]:
    """The terms of MIN_LENGTH or more characters of the training texts."""
    found: Set[str] = set()
    for path in paths:
        for text in training_texts(path):
            found |= terms(text)
    return found


def meta_number_terms(meta: Dict[str, Any]) -> Set[str]:
    """The numbers of a meta as the package renders them (meta.json, spaCy's README table
    with scores x 100, package_pipeline's notes with 4 decimals): measurements, not text."""
    rendered: List[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            rendered.extend([str(value), f"{value:.2f}", f"{value:.4f}", f"{value * 100:.2f}"])
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(meta)
    return terms(" ".join(rendered))


def blank_pipeline_terms(lang: str) -> Set[str]:
    """The terms of the files of a blank pipeline of LANG as spaCy saves it (spaCy's language
    data and serialization keys), and of spaCy's package template."""
    import importlib

    spacy_package = importlib.import_module("spacy.cli.package")
    with tempfile.TemporaryDirectory() as tmp:
        spacy.blank(lang).to_disk(tmp)
        found = set().union(*(terms(s) for p in Path(tmp).rglob("*") if p.is_file()
                              for s in file_strings(p.relative_to(tmp).as_posix(), p.read_bytes())))
    return found | terms(Path(spacy_package.__file__).read_text(encoding="utf-8"))


def factory_terms() -> Set[str]:
    """The terms of the project's components: names, default settings, and the rule names
    and label presets deid_rules may be configured with."""
    import inspect

    from spacy.language import Language

    found = set()
    for name in PROJECT_FACTORIES:
        factory = spacy.registry.factories.get(name)  # through the runtime's entry point: registers it
        found |= terms(name) | terms(json.dumps(Language.get_factory_meta(name).default_config))
        module = inspect.getmodule(factory)
        for constant in ("RULES", "PRESETS"):
            found |= terms(json.dumps(getattr(module, constant, None)))
    return found


def reference_terms(lang: str, pipeline: List[str]) -> Set[str]:
    """The terms of a fresh, untrained pipeline of the project's config (configs/ner_trf.cfg
    when PIPELINE has a transformer, else ner_cpu.cfg) in LANG, with one placeholder label and
    the de-identification components: serialization keys, layer names, settings. Empty (and a
    warning) when it cannot be built here (a transformer offline): the check is then stricter."""
    from spacy import util

    config_path = ROOT / "configs" / ("ner_trf.cfg" if "transformer" in pipeline else "ner_cpu.cfg")
    try:
        nlp = util.load_model_from_config(util.load_config(config_path, overrides={"nlp.lang": lang}), auto_fill=True)
        for _, pipe in nlp.pipeline:
            try:
                pipe.add_label("X")  # the NER (an initialized NER needs a label)
            except (AttributeError, NotImplementedError):  # tok2vec, transformer
                pass
        nlp.initialize()
        for name in PROJECT_FACTORIES:  # as the product configs add them (configs/deid_<lang>.cfg)
            nlp.add_pipe(name)
        with tempfile.TemporaryDirectory() as tmp:
            nlp.to_disk(tmp)
            return set().union(*(terms(s) for p in Path(tmp).rglob("*") if p.is_file()
                                 for s in file_strings(p.relative_to(tmp).as_posix(), p.read_bytes())))
    except Exception as e:  # noqa: BLE001  (any failure: check without this part of the allow-list)
        msg.warn(f"No untrained reference pipeline from {config_path.name} ({type(e).__name__}): "
                 "its serialization keys and layer names are not allow-listed")
        return set()


def allowed_terms(meta: Dict[str, Any], allow_text: Iterable[str] = ()) -> Set[str]:
    """The allow-list of a wheel whose meta.json is META (see the module doc)."""
    lang = meta.get("lang", "xx")
    allowed = (terms(WHEEL_FORMAT) | blank_pipeline_terms(lang) | meta_number_terms(meta) | factory_terms()
               | reference_terms(lang, meta.get("pipeline", [])))
    for rel in PROJECT_TEXT:
        allowed |= terms((ROOT / rel).read_text(encoding="utf-8"))
    for labels in (meta.get("labels") or {}).values():
        allowed |= terms(" ".join(str(label) for label in labels))
    for split in ((meta.get("training_data") or {}).get("sizes") or {}).values():  # the corpus's labels
        allowed |= terms(" ".join(map(str, (split.get("entities_per_label") or {}) if isinstance(split, dict) else ())))
    for text in allow_text:
        allowed |= terms(text)
    return allowed


def wheel_meta(wheel: Path) -> Dict[str, Any]:
    """The pipeline meta.json of a spaCy package wheel (<name>/<name>-<version>/meta.json)."""
    with zipfile.ZipFile(wheel) as z:
        metas = [n for n in z.namelist() if n.endswith("/meta.json") and n.count("/") == 2]
        if not metas:
            raise ValueError(f"{wheel}: no <package>/<package>-<version>/meta.json (not a spaCy package wheel)")
        return json.loads(z.read(metas[0]))


def check_wheel(wheel: Path, training: Iterable[Path], allow_text: Iterable[str] = ()) -> Dict[str, Any]:
    """Training-text terms found in the wheel outside the allow-list, per file.

    wheel (Path): the built wheel.
    training (Iterable[Path]): the training text (.spacy DocBins, .jsonl notes).
    allow_text (Iterable[str]): texts the packager was given; their terms are allowed.
    RETURNS (Dict[str, Any]): counts of distinct terms, findings per file, and the terms found
        under `terms` (for --show-words and tests only).
    """
    per_file = wheel_terms(wheel)
    train = training_terms(training)
    allowed = allowed_terms(wheel_meta(wheel), allow_text)
    found = {name: (ws & train) - allowed for name, ws in per_file.items()}
    found = {name: ws for name, ws in found.items() if ws}
    everything = set().union(*per_file.values())
    return {"files": len(per_file), "wheel_terms": len(everything), "training_terms": len(train),
            "shared_terms": len(everything & train), "allowed_shared": len(everything & train & allowed),
            "findings": len(set().union(*found.values())) if found else 0,
            "per_file": {name: len(ws) for name, ws in sorted(found.items())},
            "terms": sorted(set().union(*found.values())) if found else []}


def report(result: Dict[str, Any], wheel: Path, show_words: bool = False) -> bool:
    """Print counts and file names (never terms unless asked); True when the wheel is clean."""
    msg.info(f"{wheel.name}: {result['files']} files, {result['wheel_terms']} distinct terms; training text: "
             f"{result['training_terms']}; shared {result['shared_terms']}, allow-listed {result['allowed_shared']}")
    if not result["findings"]:
        msg.good(f"{wheel.name}: no training-text term of {MIN_LENGTH}+ characters outside the allow-list")
        return True
    msg.fail(f"{wheel.name}: {result['findings']} training-text terms outside the allow-list")
    for name, count in result["per_file"].items():
        print(f"  {name}: {count}")
    if show_words:
        print("  terms: " + " ".join(result["terms"]))
    return False

