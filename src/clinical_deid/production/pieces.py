"""Long notes: cut into bounded pieces, de-identified one by one, joined back exactly.

The tokenizer and the model see texts of at most `--max-chars` characters; the output, the
spans' offsets and the token count are those one document would give.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from spacy.language import Language
from spacy.util import raise_error

from .pipeline import make_doc, set_error_handler


class PieceError(Exception):
    """A piece of a long note failed: where (offset) and the exception's type."""


def cut_points(text: str, max_chars: int) -> List[Tuple[int, int]]:
    """(start, end) of pieces of at most `max_chars`: cut after the last blank line, else line
    break, else space of each window's second half (an entity rarely spans them); a hard cut
    only where a piece has no whitespace at all."""
    pieces: List[Tuple[int, int]] = []
    start = 0
    while len(text) - start > max_chars:
        end, low = start + max_chars, start + max_chars // 2
        cut = text.rfind("\n\n", low, end) + 2
        if cut < low + 2:
            cut = max(text.rfind(c, low, end) for c in "\n\r\t ") + 1
        if cut <= low:
            cut = end
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(text)))
    return pieces


def deidentify_long(nlp: Language, text: str, group: Optional[str], max_chars: int) -> Tuple[str, List[Dict[str, Any]], int]:
    """De-identify a long note piece by piece, as one document would be.

    nlp (Language): the pipeline (its error handler is set to raise meanwhile: nlp(doc) would
        go on after a handled error).
    text (str): the note.
    group (Optional[str]): the date-shift group all pieces share, so a keyed component shifts
        their dates alike.
    max_chars (int): the longest piece.
    RETURNS (Tuple[str, List[Dict[str, Any]], int]): the output, its spans (offsets in the whole
        note and output) and its number of tokens. Raises PieceError naming the piece's offset.
    """
    previous = nlp.default_error_handler
    set_error_handler(nlp, raise_error)
    outputs: List[str] = []
    spans: List[Dict[str, Any]] = []
    tokens = out_len = 0
    try:
        for start, end in cut_points(text, max_chars):
            try:
                doc = nlp(make_doc(nlp, text[start:end], group))
            except Exception as err:
                raise PieceError(f"the piece at character {start}: {type(err).__name__}") from None
            if doc._.deidentified is None:
                raise PieceError(f"the piece at character {start}: no de-identified text")
            for span in doc._.deid_spans:
                spans.append({**span, "start": span["start"] + start, "end": span["end"] + start,
                              "out_start": span["out_start"] + out_len, "out_end": span["out_end"] + out_len})
            outputs.append(doc._.deidentified)
            out_len += len(doc._.deidentified)
            tokens += len(doc)
    finally:
        set_error_handler(nlp, previous)
    return "".join(outputs), spans, tokens
