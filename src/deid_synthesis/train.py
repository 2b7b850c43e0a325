"""`spacy train`, timed: the wall time goes into <output>/train_time.json for the results table.

The saved pipelines (model-best, model-last) are then pruned to the strings they need
(deid_synthesis.prune_strings): `spacy train` saves every word of the training text in
`vocab/strings.json`, and a model must not ship its training notes' words.

Overrides are passed as spaCy's CLI takes them (`--paths.train corpus/x/train.spacy`).
"""
import time
from pathlib import Path

import srsly
from spacy.cli.train import train

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from deid_synthesis.prune_strings import prune_strings

SAVED = ("model-best", "model-last")


def timed_train(config_path: Path, output_path: Path, overrides: dict, use_gpu: int = -1) -> float:
    """Train, record the wall time of training alone, then prune the saved pipelines' strings
    (their counts before and after go into train_time.json as `strings`).

    config_path (Path): the training config.
    output_path (Path): the folder spacy train writes model-best and model-last to.
    overrides (dict): config overrides, dotted keys (`paths.train`) to values.
    use_gpu (int): GPU id, or -1 for the CPU.
    RETURNS (float): the seconds training took.
    """
    start = time.perf_counter()
    train(config_path, output_path, use_gpu=use_gpu, overrides=overrides)
    seconds = time.perf_counter() - start
    output_path = Path(output_path)
    strings = {name: prune_strings(output_path / name) for name in SAVED if (output_path / name).is_dir()}
    timing = {"seconds": round(seconds, 1), "config": str(config_path), "overrides": overrides, "gpu_id": use_gpu,
              "strings": strings}
    srsly.write_json(output_path / "train_time.json", timing)
    return seconds
