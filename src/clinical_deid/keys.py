"""The surrogate key: read it, check it, keep it out of every message.

With a key, every surrogate is drawn from HMAC-SHA256(key, kind + folded original) (see
`Surrogates.scope`), so nobody without it can recompute a surrogate from a candidate
original. Without one, a document's draws are seeded from the component's seed and the text
(`document_seed`), which anyone holding the output can redo. The key comes from a file or
``$DEID_SURROGATE_KEY`` and lives in memory only (`Secret`: not in repr, str or messages).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional

KEY_ENV_VAR = "DEID_SURROGATE_KEY"
MIN_KEY_BYTES = 16


class Secret:
    """Bytes that never show: not in repr, str or any message (the surrogate key)."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __getstate__(self) -> bytes:  # pickled with the component for spawned workers
        return self.value

    def __setstate__(self, value: bytes) -> None:
        self.value = value


def _key_bytes(raw: bytes) -> bytes:
    """A key as written in a file or variable: hex digits (whitespace around them ignored)
    are decoded, anything else is the key's bytes as they are."""
    stripped = raw.strip()
    if stripped and len(stripped) % 2 == 0 and re.fullmatch(rb"[0-9a-fA-F]+", stripped):
        return bytes.fromhex(stripped.decode("ascii"))
    return raw


def check_key(key: bytes, where: str) -> bytes:
    """key (bytes): The key's bytes. where (str): What to name in the error (a file, a
    variable, a component). RETURNS (bytes): `key`; ValueError if it is too short or uniform."""
    if len(key) < MIN_KEY_BYTES or len(set(key)) < 4:
        raise ValueError(f"{where}: the surrogate key is too short or too uniform (at least "
                         f"{MIN_KEY_BYTES} random bytes, e.g. 32 bytes written as 64 hex digits)")
    return key


def load_key(key_file: Optional[Path] = None, env_var: str = KEY_ENV_VAR) -> Optional[bytes]:
    """The surrogate key, from `key_file` if given, else from the environment variable
    `env_var`; hex digits or raw bytes, at least 16 bytes. None if neither is given.
    ValueError naming the file or variable (never the key) if unreadable or too short.

    key_file (Optional[Path]): A file holding the key. env_var (str): The variable to read otherwise.
    RETURNS (Optional[bytes]): The key, or None.
    """
    if key_file is not None:
        try:
            raw = Path(key_file).read_bytes()
        except OSError as err:
            raise ValueError(f"{key_file}: cannot read the surrogate key file ({type(err).__name__})") from None
        return check_key(_key_bytes(raw), str(key_file))
    value = os.environ.get(env_var)
    if not value:
        return None
    return check_key(_key_bytes(value.encode("utf8", "surrogateescape")), f"${env_var}")


def document_seed(seed: int, text: str) -> int:
    """Seed of a document's draws: depends on the component's seed and the text only.

    seed (int): The component's seed. text (str): The document's text.
    RETURNS (int): The seed of the document's random stream.
    """
    digest = hashlib.blake2b(text.encode("utf8", "surrogatepass"), digest_size=8, key=str(seed).encode("utf8"))
    return int.from_bytes(digest.digest(), "little")
