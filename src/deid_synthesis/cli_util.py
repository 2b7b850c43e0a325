"""Loading a pipeline for a CLI as `spacy evaluate` does: `--code` first, then the GPU, then the model.

Errors end the command with a message naming the file or model, never a traceback.
"""
from pathlib import Path
from typing import Optional, Union

import spacy
from spacy.language import Language
from wasabi import msg


def load_pipeline(model: Union[str, Path], code: Optional[Path] = None, gpu_id: int = -1) -> Language:
    """Load a pipeline for a command line, or end the command with a message naming what failed.

    model (Union[str, Path]): a package name or a pipeline folder.
    code (Optional[Path]): a Python file with registered functions to import first (`--code`).
    gpu_id (int): GPU id, or -1 for the CPU.
    RETURNS (Language): the loaded pipeline.
    """
    if code is not None:
        if not Path(code).is_file():
            msg.fail(f"Code file not found: {code}", exits=1)
        spacy.util.import_file("python_code", code)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
        msg.info(f"Using GPU {gpu_id}")
    try:
        return spacy.load(model)
    except (OSError, IOError, ValueError) as err:
        msg.fail(f"Can't load pipeline {model}", f"{type(err).__name__}: {err}", exits=1)
