"""The grid's cache: one folder per step and settings, named by a short hash of the settings.

Each folder holds settings.json (what made it) and result.json (written last: the step is
done); a step whose result exists with the same settings is skipped. The key covers settings
and input contents, not the code: after changing a step's code, delete its folders.
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Dict, List

import srsly
from wasabi import msg

from deid_synthesis.grid.plan import GridError


def short_hash(settings: Dict) -> str:
    """The first 12 hex digits of the sha256 of the settings as sorted JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf8")).hexdigest()[:12]


class Cache:
    """Runs a step unless its result exists with the same settings; logs what it did."""

    def __init__(self, root: Path, silent: bool = False):
        self.root, self.silent = Path(root), silent
        self.log: List[Dict] = []
        self._fingerprints: Dict[str, str] = {}

    def fingerprint(self, path: Path) -> str:
        """sha256 of a file's content, or of a folder's relative paths and contents."""
        path = Path(path)
        if str(path) not in self._fingerprints:
            digest = hashlib.sha256()
            for file in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
                digest.update(str(file.relative_to(path) if file != path else "").encode("utf8"))
                with file.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
            self._fingerprints[str(path)] = "sha256:" + digest.hexdigest()[:16]
        return self._fingerprints[str(path)]

    def run(self, step: str, settings: Dict, fn: Callable[[Path], Dict], what: str = "") -> Dict:
        """fn(folder) does the work into the folder and returns the figures to keep.

        Returns result.json ({"key", "folder", "seconds", **figures})."""
        # As settings.json will read back (srsly keeps 9 decimals of a float).
        settings = srsly.json_loads(srsly.json_dumps({"step": step, **settings}))
        key = short_hash(settings)
        folder = self.root / step / key
        done, written = folder / "result.json", folder / "settings.json"
        entry = {"step": step, "key": key, "what": what}
        stored = srsly.read_json(written) if written.exists() else None
        if done.exists() and stored == settings:
            self.log.append({**entry, "action": "skipped"})
            if not self.silent:
                msg.text(f"  {step} {what}: done with the same settings, skipped → {folder}")
            return srsly.read_json(done)
        if stored is not None and stored != settings:
            raise GridError(f"{folder}: holds other settings than its key says; delete the folder")
        folder.mkdir(parents=True, exist_ok=True)
        srsly.write_json(written, settings)
        if not self.silent:
            msg.info(f"  {step} {what}: running → {folder}")
        start = time.perf_counter()
        figures = fn(folder)
        result = {"key": key, "folder": str(folder), "seconds": round(time.perf_counter() - start, 1), **figures}
        srsly.write_json(done, result)
        self.log.append({**entry, "action": "ran"})
        return srsly.read_json(done)  # as a later run will read it (srsly rounds floats)
