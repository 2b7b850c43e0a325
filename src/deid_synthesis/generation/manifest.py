"""What names a generator: base-model defaults and the adapter's manifest (no torch).

An adapter is a folder written by `python -m scripts.adapt`: `manifest.json`, plus peft's
`adapter_config.json` / `adapter_model.safetensors` unless the data fraction was 0 (the
paper's "no adaptation" point, which then means the base model).
"""
import hashlib
from pathlib import Path
from typing import Optional, Union

import srsly

DEFAULT_BASE = "gemma3-270m"
DEFAULT_CACHE = Path("cache/models")
MANIFEST = "manifest.json"


class ModelLoadError(ValueError):
    """A base model or adapter that cannot be loaded as asked (the message names the folder)."""


def read_manifest(adapter: Union[str, Path]) -> dict:
    """The manifest of an adapter folder.

    adapter (Union[str, Path]): the folder.
    RETURNS (dict): the manifest; ModelLoadError when the folder has none.
    """
    path = Path(adapter) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{adapter}: no {MANIFEST} (write adapters with `python -m scripts.adapt`)")
    return srsly.read_json(path)


def manifest_hash(adapter: Optional[Union[str, Path]]) -> Optional[str]:
    """Short hash of an adapter's manifest: names the adapter in the provenance of samples.

    adapter (Optional[Union[str, Path]]): the folder, or None.
    RETURNS (Optional[str]): 16 hex digits, or None without an adapter.
    """
    if not adapter:
        return None
    return hashlib.sha256((Path(adapter) / MANIFEST).read_bytes()).hexdigest()[:16]


def has_lora(adapter: Optional[Union[str, Path]]) -> bool:
    """Whether the adapter folder holds LoRA weights (not so for fraction 0)."""
    return bool(adapter) and (Path(adapter) / "adapter_config.json").exists()
