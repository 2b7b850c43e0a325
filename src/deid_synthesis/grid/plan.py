"""The grid's plan: its options checked before anything runs, and its cells.

Seeds, as in the paper: the documents of a share are always chosen with data seed 0 (a
smaller share is a subset of a larger one, and the adapter and an annotator of the same
share see the same notes), so shares are comparable across seeds. The repeated seeds
change the LoRA initialisation and batch order, the generation sampling, the synthetic
dev hold-out and the synthetic model's training (spaCy's `--system.seed`).
"""
import itertools
import math
from pathlib import Path
from typing import Callable, Dict, List

from deid_synthesis.generation.adapt import DEFAULT_LEARNING_RATE, PRECISIONS, resolve_precision

DATA_SEED = 0  # chooses the documents of a share, the same for every repeated seed
FACTORS = ("base_model", "gen_vocabulary", "annotator_fraction", "fraction", "volume")  # seed is the repeat


class GridError(ValueError):
    """Grid settings that cannot run, or a step that failed; the message says which."""


def parse_list(text: str, cast: Callable, name: str) -> list:
    """"0.05,0.25" -> [0.05, 0.25] (duplicates dropped, order kept); a clear error otherwise."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = cast(item)
        except ValueError:
            raise GridError(f"--{name}: '{item}' is not a valid value (expected a comma-separated list)") from None
        if value not in values:
            values.append(value)
    if not values:
        raise GridError(f"--{name}: no values")
    return values


def make_grid(**options) -> Dict:
    """Check every setting before anything runs; returns the grid's options with lists parsed."""
    grid = dict(options)
    for name, cast in (("fractions", float), ("volumes", float), ("seeds", int), ("annotator_fractions", float),
                       ("base_models", str), ("gen_vocabularies", str)):
        if isinstance(grid[name], str):
            grid[name] = parse_list(grid[name], cast, name.replace("_", "-"))
        grid[name] = [cast(v) for v in grid[name]]
    problems = [f"fraction {f} is outside [0, 1]" for f in grid["fractions"] if not 0 <= f <= 1]
    problems += [f"annotator fraction {f} is outside (0, 1]" for f in grid["annotator_fractions"] if not 0 < f <= 1]
    problems += [f"volume {v} is not positive" for v in grid["volumes"] if not v > 0 or math.isinf(v)]
    problems += [f"generation vocabulary '{v}': use full or corpus" for v in grid["gen_vocabularies"]
                 if v not in ("full", "corpus")]
    if grid["adapt_precision"] not in PRECISIONS:
        problems.append(f"adapter precision '{grid['adapt_precision']}': use {', '.join(PRECISIONS)}")
    grid.setdefault("adapt_learning_rate", DEFAULT_LEARNING_RATE)
    if not grid["adapt_learning_rate"] > 0:
        problems.append(f"adapter learning rate {grid['adapt_learning_rate']} is not positive")
    if grid["train_steps"] < 1 or grid["max_new_tokens"] < 1:
        problems.append("--train-steps and --max-new-tokens must be at least 1")
    needed = {"train": grid["train"], "dev": grid["dev"], "test": grid["test"], "config": grid["config"],
              "generation config": grid["generate_config"]}
    if 1.0 in grid["annotator_fractions"]:
        needed["gold annotator (run the train command, or pass --gold-model)"] = Path(grid["gold_model"]) / "meta.json"
    problems += [f"{what}: {path} not found" for what, path in needed.items() if not Path(path).exists()]
    if problems:
        raise GridError("grid settings refused, nothing was run:\n" + "\n".join(f"- {p}" for p in problems))
    # The precision the adapters train in, as their cache keys name it.
    grid["adapt_precision"] = "bf16" if resolve_precision(grid["adapt_precision"]) else "fp32"
    return grid


def cells(grid: Dict) -> List[Dict]:
    """Every combination of the factors and the seeds, one dict per cell."""
    axes = [grid["base_models"], grid["gen_vocabularies"], grid["annotator_fractions"], grid["fractions"],
            grid["volumes"], grid["seeds"]]
    return [dict(zip(FACTORS + ("seed",), values)) for values in itertools.product(*axes)]
