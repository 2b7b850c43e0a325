"""One run per output: exclusive locks taken on all of a run's outputs at once, or none.

Two runs writing one output would interleave their lines; the second stops at once instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Sequence

from .errors import DeidError

try:  # exclusive locks on the outputs (POSIX); elsewhere a run takes none
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class OutputLock:
    """Exclusive locks on a run's outputs (a folder or a file each), taken at once or not at all.

    files (List[Path]): output files (created when missing, so that they can be locked).
    folders (Sequence[Path]): output folders (created when missing).
    """

    def __init__(self, files: List[Path], folders: Sequence[Path] = ()) -> None:
        self.paths = [*folders, *files]
        self.folders = set(folders)
        self.fds: List[int] = []

    def __enter__(self) -> "OutputLock":
        path = None
        try:
            for path in self.paths:
                self.fds.append(self._open(path))
                if fcntl is not None:
                    try:
                        fcntl.flock(self.fds[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise DeidError(f"another run is writing {path} (it holds the lock): wait for it to end, "
                                        "or choose another output") from None
        except OSError as err:
            self.__exit__()
            raise DeidError(f"cannot open {err.filename or path} for writing: {err.strerror or type(err).__name__}") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self, path: Path) -> int:
        if path in self.folders:
            path.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDONLY)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __exit__(self, *exc: Any) -> None:
        for fd in self.fds:
            os.close(fd)  # releases the lock
        self.fds = []
