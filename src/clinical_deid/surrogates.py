"""The surrogates of one document: the state every surrogate operator shares.

A `Surrogates` holds the document's random stream (shared with Faker), what was drawn so
far (so the same value gets the same surrogate), the date shift and the age delta (one per
document, or per patient with a key), and the leak check (no surrogate may hold one of the
note's originals). The operators (``clinical_deid.operators``, one per kind) draw; this
object gives them the stream, the scope and the checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import re
from datetime import timedelta
from typing import AbstractSet, Callable, Dict, Iterator, Optional, Sequence, Tuple

from .dates import find_dates, shifted_or_none
from .folding import WORD, FoldedStrings, fold, match_case, word_runs
from .labels import NAME_KINDS, PART_KINDS
from .locale_data import LocaleData
from .operators import get_operator
from .operators.temporal import move_age
from .vocabulary import AGE_UNITS, NOT_NAMES, ORGANISATION_HEAD, STREET_NUMBER_WORDS, STREET_TYPE


class Surrogates:
    """Draws the surrogates of one document and remembers them (consistency).

    All draws come from one `random.Random`, shared with Faker. Without a key it is seeded
    for the document and draws run on in order. With a key, each value's draws are reseeded
    from HMAC-SHA256(key, what is drawn + its folded original) (see `scope`), so the same
    real value gets the same surrogate in every note of a run, and nobody without the key
    can recompute a surrogate from a candidate original.
    """

    def __init__(self, data: LocaleData, rng: random.Random, originals: Sequence[Tuple[str, str]],
                 max_date_shift: int, max_age_shift: int, avoid_strings: AbstractSet[str] = frozenset(),
                 key: Optional[bytes] = None, group: str = "") -> None:
        self.data = data
        self.rng = rng
        data.fake.random = rng
        self.key = key
        # With a key: whose dates and ages these are (the date shift and age delta are drawn
        # per group: a patient id, or the note's text).
        self.group = group
        self.max_date_shift = max_date_shift
        self._shift: Optional[timedelta] = None
        self.max_age_shift = max_age_shift
        self._age_delta: Optional[int] = None
        self._avoid_re = _avoid_pattern(data, originals)
        # Strings from outside the document that no surrogate may hold either (casefolded,
        # whitespace runs as one space): the real corpus's PHI when a synthetic corpus is
        # pseudonymized, so that no drawn name, town or shifted date is a real one.
        self.avoid_strings = FoldedStrings.of(avoid_strings)
        self.date_originals = [text for kind, text in originals if kind == "date"]
        self.age_originals = [text for kind, text in originals if kind == "age"]
        self.parts: Dict[str, str] = {}  # name part (folded) -> surrogate
        self.values: Dict[Tuple[str, str], str] = {}
        self._avoid = ""  # the text being replaced

    @property
    def shift(self) -> timedelta:
        """The document's date offset, drawn at first use so that no shifted date lands on
        another date of the document (that would leave an original date string in the text,
        "2018" moved to "2019" while "2017-12-30" moved to "2018-02-03")."""
        if self._shift is None:
            if self.max_date_shift <= 0:
                self._shift = timedelta(0)
                return self._shift
            matches = [m for text in self.date_originals for _, _, m in find_dates(text, self.data.lang)]
            # Years only ("2005", "2006", "2007") may have no offset within max_date_shift
            # that moves each onto a year not in the note: the range then widens by a year
            # at a time (the offset is still one per document, so intervals are kept).
            with self.scope("date-shift", self.group):
                for attempt in range(100):
                    sign = 1 if self.rng.random() < 0.5 else -1
                    days = self.max_date_shift * (1 + attempt // 5)
                    self._shift = timedelta(days=sign * self.rng.randint(1, days))
                    moved = (shifted_or_none(m, self._shift) for m in matches)
                    if not any(text is not None and self.leaks(text) for text in moved):
                        break
        return self._shift

    @property
    def age_delta(self) -> int:
        """The document's age offset, drawn at first use so that no moved age holds another
        original of the note ("79 años" moved onto "77 años"): deltas up to max_age_shift
        first, then up to 5 more."""
        if self._age_delta is None:
            self._age_delta = 0
            if self.max_age_shift > 0:
                with self.scope("age-delta", self.group):
                    for limit in (self.max_age_shift, self.max_age_shift + 5):
                        deltas = [d for d in range(-limit, limit + 1) if d]
                        self.rng.shuffle(deltas)
                        for delta in deltas:
                            self._age_delta = delta
                            if not any(self.leaks(move_age(text, delta)) for text in self.age_originals):
                                return delta
        return self._age_delta

    @contextlib.contextmanager
    def scope(self, *what: str) -> Iterator[None]:
        """With a key: the draws inside come from a stream seeded by HMAC-SHA256(key, what),
        and the stream outside is left as it was (so a value drawn in a nested scope, or
        found already drawn, changes nothing around it). Without a key: nothing."""
        if self.key is None:
            yield
            return
        state = self.rng.getstate()
        message = "\x1f".join(what).encode("utf8", "surrogatepass")
        self.rng.seed(int.from_bytes(hmac.new(self.key, message, hashlib.sha256).digest(), "big"))
        try:
            yield
        finally:
            self.rng.setstate(state)

    def get(self, kind: str, text: str) -> str:
        """The surrogate of `text` as a `kind`; the same for the same value (names: the same
        string; others: in any case or accent form).

        kind (str): A surrogate kind (an operator's name, see clinical_deid.operators).
        text (str): The original.
        RETURNS (str): The surrogate. May raise on a value the operator cannot handle
            (DeidTransform then redacts it).
        """
        key = (kind, text if kind in NAME_KINDS else fold(text))
        if key not in self.values:
            outer, self._avoid = self._avoid, fold(text)
            try:
                with self.scope("value", kind, fold(" ".join(text.split()))):
                    operator = get_operator(kind)
                    operator.validate(text)
                    self.values[key] = operator.operate(text, self)
            finally:
                self._avoid = outer
        value = self.values[key]
        return value if kind in NAME_KINDS else match_case(text, value)

    def leaks(self, value: str) -> bool:
        """Whether `value` holds one of the document's originals (see __init__), or one of
        `avoid_strings`, as a word or run of words.

        value (str): A drawn surrogate.
        RETURNS (bool): Whether it holds an original or a string to avoid.
        """
        folded = fold(value)
        if folded == self._avoid or (self._avoid_re and self._avoid_re.search(folded)):
            return True
        return bool(self.avoid_strings) and any(part in self.avoid_strings for part in word_runs(folded))

    def fresh(self, draw: Callable[[], str], tries: int = 20) -> str:
        """A draw that holds none of the document's originals (the last one after `tries`).

        draw (Callable[[], str]): Draws one candidate. tries (int): Redraws at most.
        RETURNS (str): The first candidate that does not leak, else the last one.
        """
        value = draw()
        for _ in range(tries):
            if not self.leaks(value):
                break
            value = draw()
        return value


def _avoid_pattern(data: LocaleData, originals: Sequence[Tuple[str, str]]) -> Optional["re.Pattern[str]"]:
    """No surrogate may contain, as a whole word, one of the document's entity strings
    ("77 años" moved onto another age, "14" inside a drawn ID) or a distinctive word of its
    names and places ("Salamanca" drawn as the city of a surrogate hospital)."""
    avoid = {fold(text) for _, text in originals if fold(text).strip()}
    generic = data.generic_words | NOT_NAMES | STREET_NUMBER_WORDS | AGE_UNITS
    for kind, text in originals:
        if kind in PART_KINDS:
            # A street's type ("Avda.") and an organisation's head ("Ayuntamiento") are
            # kept in the surrogate by design: they name no one.
            head = (STREET_TYPE.match(text) if kind == "street"
                    else ORGANISATION_HEAD.match(text) if kind == "organisation" else None)
            avoid.update(fold(w) for w in WORD.findall(text[head.end() if head else 0:])
                         if len(w) > 2 and w.casefold() not in generic)
    if not avoid:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(a) for a in sorted(avoid, key=len, reverse=True)) + r")(?!\w)")
