"""What a training config costs before it is trained: inference tokens/s of config variants and
seconds per training update, on the same documents, in one run.

Speed depends on the architecture, not on the weights, so randomly initialised pipelines (the
corpus's labels added) size a variant before hours go into training it: the fast product
variant of issue 13 (narrower, shallower tok2vec) and the transformer annotator's cost on CPU.
Every figure of one call is measured in the same process, one variant after the other, with
the load average beside them (the cores are shared).
"""
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from spacy.language import Language
from spacy.training import Example
from spacy.util import load_model_from_config
from thinc.api import Config

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from clinical_deid.io import read_docbin


def build(config_path: Path, overrides: Dict, labels: Sequence[str]) -> Language:
    """A pipeline from a config with overrides, initialised with `labels` on its ner."""
    config = Config().from_disk(config_path, overrides={"paths.train": None, "paths.dev": None, **overrides})
    nlp = load_model_from_config(config, auto_fill=True)
    for label in labels:
        nlp.get_pipe("ner").add_label(label)
    nlp.initialize()
    return nlp


def inference_speed(variants: Dict[str, Dict], config_path: Path, docbin: Path, rounds: int = 2,
                    batch_size: int = 64) -> Dict:
    """Tokens/s of each variant's nlp.pipe over the DocBin's texts; the best of `rounds` rounds.

    variants (Dict[str, Dict]): name -> config overrides ({} is the config as it is).
    RETURNS (Dict): {"tokens", "load_before", "load_after", "variants": {name: tokens/s}}.
    """
    gold = read_docbin(docbin)
    labels = sorted({ent.label_ for doc in gold for ent in doc.ents})
    texts = [doc.text for doc in gold]
    pipelines = {name: build(config_path, overrides, labels) for name, overrides in variants.items()}
    tokens = sum(len(doc) for doc in next(iter(pipelines.values())).tokenizer.pipe(texts))
    result = {"tokens": tokens, "load_before": os.getloadavg()[0], "variants": {}}
    for _ in range(rounds):  # interleaved rounds: a burst of load hits every variant alike
        for name, nlp in pipelines.items():
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=batch_size):
                pass
            speed = tokens / (time.perf_counter() - start)
            result["variants"][name] = max(speed, result["variants"].get(name, 0.0))
    result["load_after"] = os.getloadavg()[0]
    return result


def update_speed(config_path: Path, docbin: Path, overrides: Optional[Dict] = None, n_docs: int = 40,
                 n_updates: int = 5, words_per_batch: int = 2000) -> Dict:
    """Seconds per nlp.update on batches of whole documents of about `words_per_batch` padded words.

    RETURNS (Dict): {"updates": [{"docs", "words", "seconds"}], "words_per_second", "load_before", "load_after"}.
    """
    nlp = build(config_path, overrides or {}, [])
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in read_docbin(docbin, nlp.vocab)[:n_docs]]
    nlp.initialize(lambda: examples)
    optimizer = nlp.create_optimizer()
    batches: List[List[Example]] = [[]]
    for example in examples:
        batch = batches[-1] + [example]
        if batches[-1] and max(len(e.reference) for e in batch) * len(batch) > words_per_batch:
            batches.append([example])
        else:
            batches[-1] = batch
    result = {"load_before": os.getloadavg()[0], "updates": []}
    for batch in batches[:n_updates]:
        start = time.perf_counter()
        nlp.update(batch, sgd=optimizer, losses={})
        result["updates"].append({"docs": len(batch), "words": sum(len(e.reference) for e in batch),
                                  "seconds": round(time.perf_counter() - start, 2)})
    words = sum(u["words"] for u in result["updates"])
    result["words_per_second"] = words / sum(u["seconds"] for u in result["updates"])
    result["load_after"] = os.getloadavg()[0]
    return result
