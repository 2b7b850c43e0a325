"""Replace spans of a Doc through the de-identification component, the entities moving with the
text; and the second pass of `pseudonymize-synthetic`, which replaces the real identifying PHI
strings (`privacy.verbatim.RealPhi`) left after the annotator's spans were.

`deid_transform` writes a new text and, per replaced span, its offsets in and out
(`doc._.deid_spans`); `replace_spans` re-tokenizes that text and moves every entity of the doc
along (`shifted`), so a training corpus keeps its labels. The second pass runs per chunk, and
again on the chunks of a note whose join (as the notes are released) holds a string a chunk
boundary cut (`cut_by_chunks`).
"""
import bisect
from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import filter_spans

from clinical_deid.transform import DeidTransform
from deid_synthesis.privacy.verbatim import RealPhi


# How a note's chunks are joined into the note as released (pseudonymize_corpus.notes_from_chunks).
CHUNK_JOINER = " "


def shifted(pos: int, records: Sequence[Dict], side: str) -> int:
    """Output offset of input offset `pos` of a transformed text (`records`: its deid_spans,
    sorted, not overlapping): a position inside a replaced span moves to that span's `side`
    ("start" or "end") in the output."""
    delta = 0
    for record in records:
        if record["end"] <= pos:
            delta += (record["out_end"] - record["out_start"]) - (record["end"] - record["start"])
        elif record["start"] >= pos:
            break
        else:
            return record["out_start"] if side == "start" else record["out_end"]
    return pos + delta


def replace_spans(nlp: Language, transform: DeidTransform, doc: Doc,
                  found: Sequence[Tuple[int, int, str]]) -> Tuple[Doc, Counter, List[Dict]]:
    """`doc` with the spans `found` ((start, end, label)) replaced by `transform` (with the other
    forms of a name in the doc, as it propagates), labelled where no entity of the doc covers
    them; the doc's entities move with the text. The Counter tallies the values changed per
    label, `propagated` (other mentions), `redacted` (a placeholder) and `misaligned` (a span
    that no longer falls on tokens: left unlabelled); the transform's records (deid_spans)."""
    marked = nlp.make_doc(doc.text)
    spans = [marked.char_span(start, end, label=label, alignment_mode="expand") for start, end, label in found]
    marked.ents = filter_spans([span for span in spans if span is not None])
    transform(marked)
    records = sorted(marked._.deid_spans, key=lambda record: record["start"])
    new = nlp.make_doc(marked._.deidentified)
    counts: Counter = Counter()
    ents, taken = [], []
    for ent in doc.ents:
        moved = new.char_span(shifted(ent.start_char, records, "start"), shifted(ent.end_char, records, "end"),
                              label=ent.label_)
        if moved is None:
            counts["misaligned"] += 1
            continue
        ents.append(moved)
        taken.append((moved.start_char, moved.end_char))
    for record in records:
        changed = record["replacement"] != marked.text[record["start"]:record["end"]]
        counts[record["label"]] += changed  # a value kept as it is (no surrogate) is not counted
        counts["propagated"] += changed and record["source"] == "propagated"
        counts["redacted"] += changed and (transform.mode == "redact" or "fallback" in record
                                           or record["kind"] == "redact")
        if any(a < record["out_end"] and record["out_start"] < b for a, b in taken):
            continue  # inside an entity of the annotator's: its label stays
        span = new.char_span(record["out_start"], record["out_end"], label=record["label"])
        if span is None:
            counts["misaligned"] += 1
        else:
            ents.append(span)
    new.ents = filter_spans(ents)
    new.user_data.update(doc.user_data)
    return new, counts, records


def replace_real_phi(nlp: Language, transforms: Sequence[DeidTransform], doc: Doc, real: RealPhi,
                     pieces: Sequence[Tuple[int, int, str]] = ()) -> Tuple[Doc, Counter]:
    """The second pass: every whole-word occurrence of a real identifying PHI string that the
    first pass left (the annotator missed it, or its label keeps its value), and the `pieces`
    of one that a chunk boundary cuts, are replaced by the first transform (a surrogate of the
    string's gold kind); whatever is still found after it, by the next (a placeholder).
    The Counter: as `replace_spans`, the labels counted in the first round only."""
    counts: Counter = Counter()
    for round_, transform in enumerate(transforms):
        found = sorted(set(real.find(doc.text)) | set(pieces if round_ == 0 else ()))
        if not found:
            break
        doc, round_counts, _ = replace_spans(nlp, transform, doc, found)
        counts.update(round_counts if round_ == 0 else {k: round_counts[k] for k in ("redacted", "misaligned")})
    return doc, counts


def cut_by_chunks(docs: Sequence[Doc], real: RealPhi) -> Dict[int, List[Tuple[int, int, str]]]:
    """The real strings that only the joined note holds (cut by a chunk boundary): for each
    chunk (its index in `docs`), the pieces of them it holds. `docs`: one note's chunks, in order."""
    offsets, pos = [], 0
    for doc in docs:
        offsets.append(pos)
        pos += len(doc.text) + len(CHUNK_JOINER)
    pieces: Dict[int, List[Tuple[int, int, str]]] = defaultdict(list)
    for start, end, label in real.find(CHUNK_JOINER.join(doc.text for doc in docs)):
        first = bisect.bisect_right(offsets, start) - 1
        last = bisect.bisect_right(offsets, end - 1) - 1
        for i in range(first, last + 1) if last > first else ():
            piece = (max(start - offsets[i], 0), min(end - offsets[i], len(docs[i].text)), label)
            if piece[1] > piece[0]:
                pieces[i].append(piece)
    return pieces


def second_pass(nlp: Language, transforms: Sequence[DeidTransform], written: Dict[str, List[Doc]],
                real: RealPhi) -> Counter:
    """Replace, in place, the real identifying strings left in each chunk and those a chunk
    boundary cuts in the note as released (chunks joined); the counts as `replace_real_phi`."""
    counts: Counter = Counter()
    notes: Dict[str, List[Tuple[int, str, int]]] = defaultdict(list)
    for part, docs in written.items():
        for i, doc in enumerate(docs):
            docs[i], doc_counts = replace_real_phi(nlp, transforms, doc, real)
            counts.update(doc_counts)
            source = str(doc.user_data.get("source_id", doc.user_data.get("id", f"{part}/{i}")))
            notes[source].append((int(doc.user_data.get("chunk", 0)), part, i))
    for chunks in notes.values():
        chunks.sort()
        docs = [written[part][i] for _, part, i in chunks]
        for k, chunk_pieces in cut_by_chunks(docs, real).items():
            _, part, i = chunks[k]
            written[part][i], doc_counts = replace_real_phi(nlp, transforms, written[part][i], real, chunk_pieces)
            counts.update(doc_counts)
    return counts
