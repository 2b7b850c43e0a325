"""The operator interface, and the digit drawing several operators share."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..surrogates import Surrogates


class Operator:
    """Draws the surrogate of one kind (in the style of Presidio's anonymizer operators:
    one small class per kind, `validate` then `operate`, found by name).

    An operator keeps no state of its own: everything a document shares (the random stream,
    what was drawn, the date shift, the leak check) is on the `Surrogates` it is given, and
    every draw goes through `surrogates.rng` in a fixed order, so a seed or key gives the
    same output.
    """

    # The surrogate kind this operator draws for (see clinical_deid.labels.KINDS).
    name = ""

    def validate(self, text: str) -> None:
        """Raise if `text` is no value of this kind that a surrogate can replace (the span is
        then redacted); draws nothing.

        text (str): The original.
        """

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        """text (str): The original. surrogates (Surrogates): The document's shared state.
        RETURNS (str): The surrogate of `text`.
        """
        raise NotImplementedError


class Keep(Operator):
    """Not PHI: the text stays as it is."""

    name = "keep"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        return text


def random_digits_like(text: str, rng: random.Random, keep: int = 0) -> str:
    """Every digit after the first `keep` ones replaced by a random digit; the rest kept.

    text (str): The original. rng (random.Random): The stream. keep (int): Digits kept.
    RETURNS (str): `text` with its digits drawn (a first digit that was not 0 stays non-zero).
    """
    out = []
    seen = 0
    for ch in text:
        if ch.isdigit():
            if seen >= keep:
                ch = str(rng.randint(1 if seen == 0 and ch != "0" else 0, 9))
            seen += 1
        out.append(ch)
    return "".join(out)


def random_letter(rng: random.Random) -> str:
    """rng (random.Random): The stream. RETURNS (str): One drawn capital letter A-Z."""
    return chr(65 + rng.randint(0, 25))
