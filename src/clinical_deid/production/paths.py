"""Never write over the input: the output paths checked against the input and each other."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import DeidError


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` (resolved) lies inside `folder` (resolved), or is it."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (the same inode when both exist)."""
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_paths(input_path: str, output_path: str, spans_output: Optional[str]) -> None:
    """Raise DeidError when an output would write over (or into) the input or the other output.

    input_path (str): the input (a folder, a file or "-").
    output_path (str): the output (a folder, a file or "-").
    spans_output (Optional[str]): the spans file, if any.
    """
    outputs = [p for p in (output_path, spans_output) if p and p != "-"]
    if spans_output and spans_output != "-" and output_path != "-":
        if same_file(Path(spans_output), Path(output_path)):
            raise DeidError(f"--spans-output {spans_output} is the same file as OUTPUT")
        if Path(output_path).is_dir() or (input_path != "-" and Path(input_path).is_dir()):
            if inside(Path(spans_output), Path(output_path)):
                raise DeidError(f"--spans-output {spans_output} is inside the output folder {output_path} "
                                "(a note's output could replace it); choose a path outside it")
    if input_path == "-":
        return
    source = Path(input_path)
    if not source.exists():
        raise DeidError(f"{input_path} does not exist")
    for out in map(Path, outputs):
        if same_file(out, source):
            raise DeidError(f"{out} is the input; choose another output path")
        if source.is_dir() and inside(out, source):
            raise DeidError(f"{out} is inside the input folder {source}; choose a path outside it")
        if source.is_dir() and out.exists() and out.is_dir() and inside(source, out):
            raise DeidError(f"the output folder {out} contains the input folder {source}")
