"""What the transform replaces: the found entities and the other mentions of their strings.

A model finds "Madrid" once and misses it twice; a name "Ana García" is found but "GARCÍA"
alone further down is not. Propagation replaces those other mentions too (with the same
surrogate), in any case or accent form and by characters, not tokens.
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

from spacy.tokens import Doc, Span

from .coverage import Coverage
from .folding import WORD, fold, folded_text
from .labels import PROPAGATED_PART_KINDS
from .locale_data import LocaleData
from .vocabulary import AGE_UNITS, NOT_NAMES, PROSE_WORD


class Mention(NamedTuple):
    """A span to replace, by characters: a found entity, or another mention of its string
    that propagation found (which need not fall on token boundaries)."""

    start_char: int
    end_char: int
    label_: str
    text: str
    n_tokens: int

    @classmethod
    def of(cls, span: Span) -> "Mention":
        """span (Span): A found entity. RETURNS (Mention): The same span by characters."""
        return cls(span.start_char, span.end_char, span.label_, span.text, len(span))


def with_age_units(doc: Doc, is_age: Callable[[str], bool]) -> List[Span]:
    """doc.ents, with an age that is a bare number followed by its unit ("8" of "8 días")
    extended over the unit: the whole string is then replaced, and propagated.

    doc (Doc): The document. is_age (Callable[[str], bool]): Whether a label's kind is age.
    RETURNS (List[Span]): The entities.
    """
    ents = []
    for e in doc.ents:
        if (is_age(e.label_) and e.text.isdigit() and e.end < len(doc)
                and doc[e.end].lower_ in AGE_UNITS and doc[e.end].ent_iob_ == "O"):
            e = Span(doc, e.start, e.end + 1, label=e.label_)
        ents.append(e)
    return ents


def _strings_to_find(doc_text: str, ents: Sequence[Span], kind_of: Callable[[Union[Span, Mention]], str],
                     data: LocaleData) -> Dict[str, str]:
    """Folded string -> label of what propagation looks for: the entities' strings of 4+
    characters (kinds that are replaced), and the capitalised words of their names and
    institutions that the note never writes in lower case (so "Paciente" of a wrong
    "Paciente Juan" stays)."""
    strings: Dict[str, str] = {}
    for e in ents:
        if len(e.text) >= 4 and kind_of(e) != "keep" and fold(e.text).strip():
            strings.setdefault(fold(e.text), e.label_)
    parts: Dict[str, str] = {}
    for e in ents:
        if kind_of(e) in PROPAGATED_PART_KINDS:
            for word in WORD.findall(e.text):
                if len(word) >= 4 and word[0].isupper() and not word.isupper() and word.casefold() not in NOT_NAMES:
                    parts.setdefault(fold(word), e.label_)
    if parts:
        generic = {fold(w) for w in data.generic_words}
        lower = {fold(w) for w in PROSE_WORD.findall(doc_text) if w.islower()}
        for word, label in parts.items():
            if word not in generic and word not in lower:
                strings.setdefault(word, label)
    return strings


def with_other_mentions(doc: Doc, ents: Sequence[Span], kind_of: Callable[[Union[Span, Mention]], str],
                        data: LocaleData, text: Optional[str] = None) -> List[Mention]:
    """`ents` plus the other whole-word mentions, with the same label, of their strings (see
    _strings_to_find). Mentions match in any case or accent form ("GARCIA", "garcía" for
    "García"; see `fold`), as words the way residual_phi counts them, and by characters: one
    glued to other text ("GarcíaNºCol") is replaced too. A mention that overlaps a span
    already taken has the rest of it replaced.

    doc (Doc): The document. ents (Sequence[Span]): The found entities.
    kind_of (Callable): An entity's surrogate kind. data (LocaleData): The locale's data.
    text (Optional[str]): doc.text, if the caller has it (it is built anew at each access).
    RETURNS (List[Mention]): The mentions to replace, sorted by start.
    """
    doc_text = doc.text if text is None else text
    strings = _strings_to_find(doc_text, ents, kind_of, data)
    mentions = [Mention.of(e) for e in ents]
    if not strings:
        return mentions
    folded = folded_text(doc_text)
    taken = Coverage((m.start_char, m.end_char) for m in mentions)
    found = sorted(((start, end, label) for needle, label in strings.items()
                    for start, end in folded.find(needle)), key=lambda f: (f[0], f[0] - f[1]))
    for start, end, label in found:  # leftmost first, then longest
        # A mention that overlaps a span already taken ("años 45 años" over the found
        # "45 años 45"): the rest of it goes too, or the surrogate beside it could
        # complete the string again.
        for piece_start, piece_end in taken.uncovered(start, end):
            piece = doc_text[piece_start:piece_end]
            lead, trail = len(piece) - len(piece.lstrip()), len(piece) - len(piece.rstrip())
            piece_start, piece_end = piece_start + lead, piece_end - trail
            if piece_start >= piece_end or not any(c.isalnum() for c in doc_text[piece_start:piece_end]):
                continue
            taken.add(piece_start, piece_end)
            tokens = doc.char_span(piece_start, piece_end, alignment_mode="expand")
            mentions.append(Mention(piece_start, piece_end, label, doc_text[piece_start:piece_end],
                                    len(tokens) if tokens is not None else 1))
    return sorted(mentions, key=lambda m: m.start_char)
