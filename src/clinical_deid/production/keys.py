"""The secret surrogate key of a run: created, read, handed to deid_transform.

With a key, a real value gets the same surrogate in every note of a run and nobody without it
can re-draw them; messages name the key's file, never the key.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Optional, Union

from spacy.language import Language

from ..keys import load_key
from .errors import DeidError
from .options import KEY_ENV


def create_key_file(path: Union[str, Path]) -> Path:
    """Write a new secret surrogate key (32 random bytes as hex), readable by its owner only.
    Never overwrites: replacing a key silently would change every surrogate of later runs.

    path (Union[str, Path]): the key file to create (its folder is created).
    RETURNS (Path): the key file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DeidError(f"{path} exists already: a key file is never overwritten") from None
    except OSError as err:
        raise DeidError(f"cannot create the key file {path}: {err.strerror or type(err).__name__}") from None
    with os.fdopen(fd, "w") as key_out:
        key_out.write(secrets.token_hex(32) + "\n")
    return path


def read_key(key_file: Optional[Union[str, Path]] = None, env_var: str = KEY_ENV) -> Optional[bytes]:
    """The surrogate key from `key_file`, else from the environment variable.

    key_file (Optional[Union[str, Path]]): the key file, if any.
    env_var (str): the environment variable read when there is no file.
    RETURNS (Optional[bytes]): the key; None when there is neither.
    """
    try:
        return load_key(Path(key_file) if key_file else None, env_var)
    except ValueError as err:
        raise DeidError(str(err)) from None
    except OSError as err:
        raise DeidError(f"cannot read the key file {key_file}: {err.strerror or type(err).__name__}") from None


def use_key(nlp: Language, key: Optional[bytes], insecure_demo_key: bool = False) -> None:
    """Give deid_transform the run's key; refuse to pseudonymize without one unless told it is a demo:
    without a key, anyone with the pipeline can re-draw the surrogates and test guesses.

    nlp (Language): a pipeline with deid_transform.
    key (Optional[bytes]): the secret key (None: none given).
    insecure_demo_key (bool): pseudonymize without a key all the same.
    """
    transform = nlp.get_pipe("deid_transform")
    if key is None:
        if transform.mode == "pseudonymize" and not insecure_demo_key and not getattr(transform, "keyed", False):
            raise DeidError(
                f"pseudonymize needs a secret key: --key-file PATH or the environment variable {KEY_ENV} "
                "(create one with --new-key-file PATH); --insecure-demo-key only for demonstrations")
        return
    if not hasattr(transform, "set_key"):
        raise DeidError("this pipeline's deid_transform takes no surrogate key (no set_key); update its code")
    transform.set_key(key)
