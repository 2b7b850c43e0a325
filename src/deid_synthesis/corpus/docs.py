"""Turn records (text + character spans) into spaCy Docs, and cut Docs into training units.

A span whose edges do not fall on token edges cannot be an entity of the Doc. What to do
with it is a policy (`misaligned`): `split` splits the tokens at the span's edges so the
gold annotation is kept exactly (default), `expand` / `contract` snap it to token edges,
`skip` drops it, `error` stops. Every such span is reported either way.

Documents can be cut into sentences or into chunks of at most N words (the paper annotates
128-word chunks); a cut never falls inside an entity.
"""
from typing import Iterator, List, Optional

from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Span

from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.records import CorpusError, Record

MISALIGNED_POLICIES = ("split", "expand", "contract", "skip", "error")
SPLIT_MODES = ("none", "sentences", "chunks")


def record_to_doc(
    nlp: Language, record: Record, misaligned: str = "split", report: Optional[list] = None
) -> Doc:
    """Tokenize a record's text and set its spans as `doc.ents`.

    `report` collects one entry per misaligned span: where it came from, its label and
    offsets, and what was done (never its text).
    """
    if misaligned not in MISALIGNED_POLICIES:
        raise CorpusError(f"unknown misaligned-span policy '{misaligned}': use one of {MISALIGNED_POLICIES}")
    doc = nlp.make_doc(record.text)
    misfits = [s for s in record.spans if doc.char_span(s.start, s.end) is None]
    for span in misfits:
        if report is not None:
            report.append({"where": span.where, "label": span.label, "start": span.start,
                           "end": span.end, "action": misaligned})
        if misaligned == "error":
            raise CorpusError(
                f"{span.where}: span {span.start}-{span.end} ({span.label}) does not align with "
                "token boundaries (choose --misaligned split/expand/contract/skip)"
            )
    if misfits and misaligned == "split":
        doc = split_at(doc, {edge for s in misfits for edge in (s.start, s.end)})
    mode = misaligned if misaligned in ("expand", "contract") else "strict"
    ents: List[Span] = []
    for s in record.spans:
        ent = doc.char_span(s.start, s.end, label=s.label, alignment_mode=mode)
        if ent is None or len(ent) == 0:  # e.g. an edge in whitespace, or skipped
            if report is not None and misaligned != "skip":
                report.append({"where": s.where, "label": s.label, "start": s.start,
                               "end": s.end, "action": "dropped"})
            continue
        if ents and ent.start < ents[-1].end:  # expanding can make neighbours overlap
            if report is not None:
                report.append({"where": s.where, "label": s.label, "start": s.start,
                               "end": s.end, "action": "dropped_overlap_after_" + mode})
            continue
        ents.append(ent)
    doc.ents = ents
    if record.sent_starts is not None:
        starts = set(record.sent_starts)
        for token in doc:
            token.is_sent_start = token.idx in starts
    doc.user_data["id"] = record.id
    return doc


def split_at(doc: Doc, edges: set) -> Doc:
    """Split every token that has a character edge strictly inside it."""
    with doc.retokenize() as retokenizer:
        for token in doc:
            cuts = sorted(e - token.idx for e in edges if token.idx < e < token.idx + len(token.text))
            if not cuts:
                continue
            bounds = [0] + cuts + [len(token.text)]
            orths = [token.text[a:b] for a, b in zip(bounds, bounds[1:])]
            heads = [(token, i) for i in range(len(orths))]
            retokenizer.split(token, orths, heads=heads)
    return doc


def _safe_boundaries(doc: Doc) -> List[bool]:
    """safe[i]: a cut before token i falls outside every entity."""
    safe = [True] * (len(doc) + 1)
    for ent in doc.ents:
        for i in range(ent.start + 1, ent.end):
            safe[i] = False
    return safe


def sentence_starts(doc: Doc) -> List[int]:
    """Token indices where sentences start, from the Doc or a rule-based sentencizer."""
    if not doc.has_annotation("SENT_START"):
        doc = Sentencizer()(doc.copy())
    return [sent.start for sent in doc.sents]


def split_doc(doc: Doc, mode: str = "none", max_words: int = 128) -> Iterator[Doc]:
    """Yield the Doc whole, per sentence, or as chunks of whole sentences up to `max_words`.

    A sentence longer than `max_words` is cut at the last token edge outside an entity.
    Cuts inside an entity are never made: a sentence boundary inside one is ignored.
    """
    if mode not in SPLIT_MODES:
        raise CorpusError(f"unknown split mode '{mode}': use one of {SPLIT_MODES}")
    if mode == "none" or len(doc) == 0:
        yield doc
        return
    if max_words < 1:
        raise CorpusError(f"--max-words must be at least 1, not {max_words}")
    safe = _safe_boundaries(doc)
    starts = [i for i in sentence_starts(doc) if safe[i]] + [len(doc)]
    pieces = []  # (start, end) token ranges of sentences, long ones already cut
    for a, b in zip(starts, starts[1:]):
        pieces.extend(_cut_long(doc, a, b, max_words, safe))
    if mode == "chunks":
        pieces = _group(doc, pieces, max_words)
    for n, (a, b) in enumerate(pieces):
        span = doc[a:b]
        if count_words(span) == 0:
            continue
        part = span.as_doc()
        part.user_data.update({"id": f"{doc.user_data.get('id', 'doc')}#{n}",
                               "source_id": doc.user_data.get("id"),
                               "char_offset": span.start_char})
        yield part


def _cut_long(doc: Doc, a: int, b: int, max_words: int, safe: List[bool]):
    while count_words(doc[a:b]) > max_words:
        words, cut = 0, None
        for i in range(a, b):
            if not (doc[i].is_space or doc[i].is_punct):
                words += 1
            if words > max_words:
                break
            if safe[i + 1] and i + 1 < b:
                cut = i + 1
        if cut is None:
            # An entity longer than max_words starts here: keep it whole, and cut right
            # after it (not at the end of the sentence).
            cut = next((i for i in range(a + 1, b) if safe[i]), None)
            if cut is None:
                break
        yield a, cut
        a = cut
    yield a, b


def _group(doc: Doc, pieces, max_words: int):
    grouped, cur, cur_words = [], None, 0
    for a, b in pieces:
        words = count_words(doc[a:b])
        if cur is not None and cur_words + words <= max_words:
            cur, cur_words = (cur[0], b), cur_words + words
        else:
            if cur is not None:
                grouped.append(cur)
            cur, cur_words = (a, b), words
    if cur is not None:
        grouped.append(cur)
    return grouped
