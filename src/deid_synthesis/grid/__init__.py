"""The paper's ablations as one grid: adaptation share, annotator share, synthetic volume,
generator model, generation vocabulary, repeated seeds.

Why a grid command rather than `spacy project run` in a loop: weasel re-runs a command when
its vars change, and every cell of an ablation changes them, so a loop would retrain the
adapter of a fraction for every volume and regenerate every corpus for every model. Here
each step's output lives in a folder named by a short hash of exactly the settings that
determine it (input files by content, upstream steps by their own key): re-running the grid,
or adding a seed or a volume, runs only what is new.

    plan     the options, checked before anything runs; the cells (`make_grid`, `cells`)
    cache    one folder per step and settings (`Cache`)
    steps    subset, adapter, generation, privacy, annotator, annotation, model, metrics
    runner   every cell through the steps; results.csv / results.json (`run_grid`)
    table    summary.md (mean ± sd over seeds) and grid.png

    python -m scripts.grid meddocan --lang es --fractions 0.05,0.25,0.95 --volumes 0.1 --seeds 0,1,2
"""
from deid_synthesis.grid.plan import DATA_SEED, FACTORS, GridError, cells, make_grid, parse_list
from deid_synthesis.grid.runner import run_grid

__all__ = ["DATA_SEED", "FACTORS", "GridError", "cells", "make_grid", "parse_list", "run_grid"]
