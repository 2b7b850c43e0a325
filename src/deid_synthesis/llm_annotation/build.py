"""Build the LLM annotator pipeline from its configs, so that `annotate` and `evaluate` load it.

The pipeline is `configs/llm_ner.cfg` (spacy-llm's NER.v3 task, the project's span parser, a
response cache, the local model) with a label set (`configs/llm/labels_*.cfg`) and optionally
another model (`configs/llm/model_server.cfg`) merged over it, then command-line overrides.
It is saved like `spacy assemble` saves one, with one difference: spacy-llm saves the few-shot
examples with the task (`llm/task/prompt_examples`), and would read them again from the gold
corpus each time the pipeline loads; here the saved config names no examples reader, so the
saved pipeline loads the examples it was built with and needs no gold corpus.

    python -m scripts.build_llm_annotator configs/llm_ner.cfg training/meddocan/llm/model-best \\
        --labels configs/llm/labels_meddocan.cfg --paths.examples corpus/meddocan/train.spacy
"""
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import spacy
from confection import Config
from spacy.language import Language


def llm_config(base: Path, extras: Iterable[Path] = (), overrides: Optional[Dict[str, Any]] = None) -> Config:
    """The base config with each extra config merged over it in order, then the overrides."""
    config = Config().from_disk(base, interpolate=False)
    for extra in extras:
        config = config.merge(Config().from_disk(extra, interpolate=False))
    return Config().from_str(config.to_str(), overrides=overrides or {}, interpolate=False)


def summary(nlp: Language) -> Dict[str, Any]:
    """What the annotator was built with: labels, examples per label, model (no example text)."""
    task = nlp.get_pipe("llm").task
    examples = getattr(task, "prompt_examples", None) or []
    model = nlp.config["components"]["llm"]["model"]
    return {"labels": list(task.labels), "examples": len(examples),
            "example_entities": dict(Counter(span.label for eg in examples for span in eg.spans)),
            "model": {key: value for key, value in model.items() if key in ("@llm_models", "base_model", "model",
                                                                              "base_url", "endpoint", "adapter")}}


def build_llm_annotator(config: Config, output: Path) -> Dict[str, Any]:
    """Assemble the pipeline of `config` and save it at `output` (examples saved, not re-read).

    RETURNS (Dict[str, Any]): `summary` of the built annotator, also saved in its meta.
    """
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    built = summary(nlp)
    nlp.meta["llm_annotator"] = built
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)  # spacy-llm's task writes into it before spaCy creates it
    nlp.to_disk(output)
    saved = Config().from_disk(output / "config.cfg", interpolate=False)
    saved["components"]["llm"]["task"]["examples"] = None
    saved.to_disk(output / "config.cfg")
    return built
