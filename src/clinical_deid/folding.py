"""Case- and accent-insensitive matching of a note's strings (Unicode case folding).

Propagation, the leak checks of surrogates and residual_phi all look for a string "in any
case or accent form" ("GARCIA", "garcía" and an NFD "García" are one string): they fold
with `fold` and search with `FoldedText`, which maps a match in the folded copy back to
exact offsets of the original even where folding changes the length.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import AbstractSet, Dict, Iterator, List, Optional, Tuple

# Combining marks are no word characters to `re`: a decomposed (NFD) "García" is one word too.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_LETTERS = rf"[^\W\d_](?:[^\W\d_]|[{_MARKS}])*"
# A word: letters (with their combining marks), apostrophes inside ("d'Ors").
WORD = re.compile(rf"{_LETTERS}(?:['’]{_LETTERS})*")
_WORD_START = re.compile(r"(?<!\w)\w")
_WORD_END = re.compile(r"\w(?!\w)")


@functools.lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    """One character folded: case folded, compatibility-decomposed, combining marks dropped
    ("É" and "e" + U+0301 -> "e", "ß" -> "ss", "İ" -> "i", "ſ" -> "s"); may be "" or longer."""
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    """`text` folded character by character (see fold_char): "GARCÍA", "garcia" and an
    NFD "García" all fold to "garcia".

    text (str): Any text.
    RETURNS (str): Its folded form (may be longer or shorter).
    """
    return "".join(fold_char(c) for c in text)


def glued(left: str, right: str, one_char: bool = False) -> bool:
    """Whether two adjacent characters are inside one word: both digits, or both letters except
    a lower-case one before an upper-case one ("MartínezNºCol" is two words there). Around a
    one-character needle, any two letters or digits are glued ("H" is in neither "pH" nor "H1N1").

    left (str): The character before ("" at the start). right (str): The one after.
    one_char (bool): Whether the needle is one character.
    RETURNS (bool): Whether the two are inside one word.
    """
    if not left or not right:
        return False
    if one_char:
        return left.isalnum() and right.isalnum()
    if left.isdigit() and right.isdigit():
        return True
    return left.isalpha() and right.isalpha() and not (left.islower() and right.isupper())


class FoldedText:
    """A text, its folded copy and the map between them, so that a match in the folded copy
    maps back to exact offsets of the original even where folding changes the length."""

    def __init__(self, text: str) -> None:
        self.text = text
        pieces = [fold_char(c) for c in text]
        self.folded = "".join(pieces)
        # Folded offset -> the first original character whose (non-empty) piece starts there.
        self._begin: Dict[int, int] = {}
        pos = 0
        for i, piece in enumerate(pieces):
            if piece and pos not in self._begin:
                self._begin[pos] = i
            pos += len(piece)
        self._nonempty = [bool(p) for p in pieces]

    def original_span(self, start: int, end: int) -> Optional[Tuple[int, int]]:
        """Original offsets of folded [start, end); None if either end cuts a character's
        piece ("s" of the "ss" of "ß"). Marks that fold to nothing after the end go with it."""
        if start not in self._begin or (end != len(self.folded) and end not in self._begin):
            return None
        return self._begin[start], self._begin[end] if end != len(self.folded) else len(self.text)

    def base_before(self, index: int) -> str:
        """The last original character before `index` that folds to something ("" if none):
        the letter under a combining mark, for word boundaries."""
        for i in range(index - 1, -1, -1):
            if self._nonempty[i]:
                return self.text[i]
        return ""

    def find(self, needle: str, word: bool = True) -> List[Tuple[int, int]]:
        """Original (start, end) of every (overlapping) occurrence of `needle` folded; with
        `word`, only those not glued to the word or number around them (see `glued`).

        needle (str): What to find. word (bool): Only whole-word occurrences.
        RETURNS (List[Tuple[int, int]]): Original offsets of each occurrence.
        """
        key = fold(needle)
        found: List[Tuple[int, int]] = []
        if not key:
            return found
        one_char = len(key) == 1
        pos = self.folded.find(key)
        while pos >= 0:
            span = self.original_span(pos, pos + len(key))
            if span is not None and not (word and (
                    glued(self.base_before(span[0]), self.text[span[0]], one_char)
                    or glued(self.base_before(span[1]), self.text[span[1] : span[1] + 1], one_char))):
                found.append(span)
            pos = self.folded.find(key, pos + 1)
        return found


@functools.lru_cache(maxsize=16)
def folded_text(text: str) -> FoldedText:
    """FoldedText of `text`, cached (the same output is searched for many strings).

    text (str): Any text.
    RETURNS (FoldedText): Its folded copy with the offset map.
    """
    return FoldedText(text)


def holds_word(haystack: str, needle: str) -> bool:
    """Whether `needle` occurs in `haystack` as a word, in any case or accent form.

    haystack (str): Where to look. needle (str): What to look for.
    RETURNS (bool): Whether `needle` is a word of `haystack`.
    """
    key = fold(needle)
    return bool(key) and key in fold(haystack) and bool(folded_text(haystack).find(needle))


def word_runs(text: str, max_chars: int = 80) -> Iterator[str]:
    """Every substring of `text` that starts at the start of a word and ends at the end of
    one (whitespace runs as one space): "ana garcía, 45" gives "ana", "ana garcía",
    "ana garcía, 45", "garcía", ...

    text (str): Any text. max_chars (int): The longest run yielded.
    YIELDS (str): Each run of whole words.
    """
    text = " ".join(text.split())
    starts = [m.start() for m in _WORD_START.finditer(text)]
    ends = [m.end() for m in _WORD_END.finditer(text)]
    for start in starts:
        for end in ends:
            if start < end <= start + max_chars:
                yield text[start:end]


class FoldedStrings(frozenset):
    """Strings already folded (see `fold`) and whitespace-normalised: `Surrogates` folds
    any other set it is given, once per document."""

    @classmethod
    def of(cls, strings: AbstractSet[str]) -> "FoldedStrings":
        """strings (AbstractSet[str]): Strings as written, or a FoldedStrings (kept as it is).
        RETURNS (FoldedStrings): The strings folded, whitespace runs as one space."""
        return strings if isinstance(strings, cls) else cls(fold(" ".join(s.split())) for s in strings)


def match_case(original: str, new: str) -> str:
    """`new` in the case of `original`: upper case (if longer than one character), lower
    case, or as it is.

    original (str): The original. new (str): Its replacement.
    RETURNS (str): `new` in the case of `original`.
    """
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original.islower():
        return new.lower()
    return new
