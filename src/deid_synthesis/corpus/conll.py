"""Token-per-line CoNLL files (the Swedish NER corpus): `token<TAB>tag`, blank line between sentences.

Tags in IO, BIO or BILOU form become character spans over the tokens joined by spaces.
BIOES (also written IOBES: E- ends, S- is a single-token entity) is BILOU under other
letters and is read as such (`--tag-scheme bioes` or `auto`).
An entity that a sentence break cuts (an I- tag continuing the previous sentence's entity)
becomes two entities, and each such place is listed in the report's warnings.
"""
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from deid_synthesis.corpus.records import CorpusError, Problems, Record, SpanRecord, read_text, split_lines

OUTSIDE_TAGS = {"O", "0", "_", ""}
TAG_SCHEMES = ("auto", "io", "bio", "bilou", "bioes", "iobes")
SCHEME_ALIASES = {"bioes": "bilou", "iobes": "bilou"}  # E- = L-, S- = U-


def parse_tag(tag: str, scheme: str) -> Tuple[str, str]:
    """Split a tag into (prefix, label): 'B-PER' -> ('B', 'PER'); IO 'PER' -> ('I', 'PER').

    BIOES prefixes become BILOU ones: 'E-PER' -> ('L', 'PER'), 'S-PER' -> ('U', 'PER').
    """
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    if tag in OUTSIDE_TAGS:
        return "O", ""
    # Messages name the prefix, never the tag: a misformatted line ('Juan Pérez') puts a
    # word of the text in the tag column.
    if len(tag) >= 2 and tag[1] in "-_" and tag[0] in "BIELUS":
        prefix, label = tag[0], tag[2:]
        if not label:
            raise ValueError(f"tag has a '{tag[:2]}' prefix but no label")
        prefix = {"E": "L", "S": "U"}.get(prefix, prefix)
        if scheme == "io" and prefix != "I":
            raise ValueError(f"tag with prefix '{tag[0]}' is not an IO tag")
        if scheme == "bio" and prefix not in "BI":
            raise ValueError(f"tag with prefix '{tag[0]}' is not a BIO tag")
        return prefix, label
    if scheme in ("bio", "bilou"):
        raise ValueError(f"tag has no {scheme.upper()} prefix (B-, I-, ...)")
    return "I", tag


def read_conll(
    path: Path,
    problems: Problems,
    scheme: str = "auto",
    sents_per_doc: int = 10,
    encoding: str = "utf-8",
) -> Iterator[Record]:
    """Token-per-line files: `token<TAB>tag` (or space-separated), blank line between sentences.

    IO tags cannot separate two adjacent entities of one type; they become one entity.
    Sentences are grouped into documents of `sents_per_doc`, tokens joined by spaces.
    """
    path = Path(path)
    if scheme not in TAG_SCHEMES:
        raise CorpusError(f"unknown tag scheme '{scheme}': use auto, io, bio, bilou or bioes")
    if sents_per_doc < 1:
        raise CorpusError(f"--sents-per-doc must be at least 1, not {sents_per_doc}")
    lines = split_lines(read_text(path, encoding).lstrip("\ufeff"))  # a BOM is no part of a token
    sentences: List[List[Tuple[str, str, int]]] = []  # (token, tag, line number)
    current: List[Tuple[str, str, int]] = []
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("-DOCSTART-"):
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) < 2 or not fields[0]:
            problems.add("missing_tag", f"{path}:{lineno}", "line has a token but no tag")
            continue
        current.append((fields[0], fields[-1], lineno))
    if current:
        sentences.append(current)
    for doc_index, start in enumerate(range(0, len(sentences), sents_per_doc)):
        yield _conll_record(path, doc_index, sentences[start : start + sents_per_doc], scheme, problems)


def _conll_record(path: Path, doc_index: int, sentences: List[List[Tuple[str, str, int]]],
                  scheme: str, problems: Problems) -> Record:
    """One document of sentences: tokens joined by spaces, tags turned into character spans."""
    tokens: List[str] = []
    sent_starts: List[int] = []
    spans: List[SpanRecord] = []
    pos = 0
    open_span: Optional[List] = None  # [start, end, label, where]

    def close() -> None:
        nonlocal open_span
        if open_span is not None:
            spans.append(SpanRecord(*open_span))
            open_span = None

    for sentence in sentences:
        label_before_break = open_span[2] if open_span is not None else None
        close()
        sent_starts.append(pos)
        for token, tag, lineno in sentence:
            where = f"{path}:{lineno}"
            try:
                prefix, label = parse_tag(tag, scheme)
            except ValueError as err:
                problems.add("bad_tag", where, str(err))
                prefix, label = "O", ""
            if label_before_break is not None and prefix in ("I", "L") and label == label_before_break:
                problems.note("entity_across_sentence_break", where)
            label_before_break = None
            start, end = pos, pos + len(token)
            continues = open_span is not None and open_span[2] == label and prefix in ("I", "L")
            if continues:
                open_span[1] = end
            else:
                close()
                if prefix != "O":
                    open_span = [start, end, label, where]
            if prefix in ("L", "U"):
                close()
            tokens.append(token)
            pos = end + 1
    close()
    return Record(f"{path.stem}-{doc_index:05d}", " ".join(tokens), spans, str(path), sent_starts)
