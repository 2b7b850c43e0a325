"""What the production check reads: the gold in any format the converters read, the
de-identified output and its spans, matched by the converter's document ids.

Gold documents come from `deid_synthesis.corpus`'s readers (BRAT folder, JSONL, CoNLL), so
their ids are the ones `convert` writes into the DocBin: a JSONL record without an `id` is
`<file stem>-<line>`, a CoNLL document `<file stem>-<index>`. A DocBin gold (`.spacy`) gives
the ids in `user_data["id"]`. `write_gold_texts` writes the production command's input for
the check, `{"id", "text"}` per gold document, so every format reaches the command with
those ids. A JSONL the command read as it was (records without ids: its output has none, its
spans the command's "line N") is matched line by line when the gold is that same JSONL file
(`--format jsonl`), or its DocBin with the spans file given (`line N` is the record `<stem>-N`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from clinical_deid.io import DataError, json_line, read_docbin, read_jsonl, write_jsonl
from deid_synthesis.corpus.prepare import find_split
from deid_synthesis.corpus.readers import read_corpus
from deid_synthesis.corpus.records import CorpusError, Problems, Record, read_text, split_lines

GOLD_FORMATS = ("auto", "brat", "jsonl", "conll", "docbin")
CONLL_SUFFIXES = (".conll", ".txt", ".tsv")
# The production command's id of a JSONL record without an id: its line in the input.
LINE_ID = re.compile(r"line ([0-9]+)")


class GoldDoc(NamedTuple):
    id: str
    text: str
    ents: List[Tuple[int, int, str]]  # (start, end, label), character offsets


def key(doc_id: str) -> str:
    """Ids of a folder run are relative paths ("a.txt"); gold ids are stems ("a")."""
    return doc_id[:-4] if doc_id.endswith(".txt") else doc_id


def gold_source(path: Path, fmt: str = "auto", part: Optional[str] = None) -> Tuple[Path, str]:
    """The gold file or folder and its format. `part` ("test"): PATH is a data folder and the
    part is found as `convert` finds it (`test/`, `test.jsonl`, `test.conll`, ...); `auto`
    takes the format from PATH (a folder: BRAT, .spacy: DocBin, .jsonl: JSONL, .conll/.txt/.tsv:
    CoNLL). CorpusError naming the path when neither works."""
    path = Path(path)
    if fmt not in GOLD_FORMATS:
        raise CorpusError(f"unknown gold format '{fmt}': use one of {', '.join(GOLD_FORMATS)}")
    if part is not None:
        if fmt in ("auto", "docbin"):
            raise CorpusError(f"{path}: --part needs the corpus format (--format brat, jsonl or conll)")
        found = find_split(path, fmt, part)
        if found is None:
            raise CorpusError(f"{path}: no {part} part in {fmt} format (the folder `convert` read)")
        return found, fmt
    if fmt != "auto":
        return path, fmt
    if path.is_dir():
        return path, "brat"
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        return path, "docbin"
    if suffix == ".jsonl":
        return path, "jsonl"
    if suffix in CONLL_SUFFIXES:
        return path, "conll"
    raise CorpusError(f"{path}: cannot tell the gold format from the name: give --format")


def gold_records(path: Path, fmt: str, problems: Problems) -> Iterator[Record]:
    """The records of a BRAT, JSONL or CoNLL gold, with the converter's ids and options."""
    return read_corpus(path, fmt, problems)


def read_gold(path: Path, fmt: str = "auto", problems: Optional[Problems] = None,
              part: Optional[str] = None) -> List[GoldDoc]:
    """Gold documents, sorted by id.

    path (Path): a BRAT folder, a JSONL or CoNLL file, a DocBin (.spacy), or (with `part`) the
        data folder holding them.
    fmt (str): one of GOLD_FORMATS.
    problems (Optional[Problems]): malformed items; lenient ones are skipped and counted there.
    part (Optional[str]): the part of a data folder, e.g. "test".
    RETURNS (List[GoldDoc]): the documents. CorpusError or DataError naming the file when it
        can't be read, or when two documents share an id.
    """
    source, fmt = gold_source(path, fmt, part)
    if fmt == "docbin":
        docs = [GoldDoc(str(doc.user_data.get("id", i)), doc.text,
                        [(e.start_char, e.end_char, e.label_) for e in doc.ents])
                for i, doc in enumerate(read_docbin(source))]
    else:
        docs = [GoldDoc(r.id, r.text, sorted((s.start, s.end, s.label) for s in r.spans))
                for r in gold_records(source, fmt, problems or Problems())]
    seen: Dict[str, int] = {}
    for doc in docs:
        seen[doc.id] = seen.get(doc.id, 0) + 1
    repeated = sorted(doc_id for doc_id, n in seen.items() if n > 1)
    if repeated:
        raise CorpusError(f"{source}: {len(repeated)} document ids occur twice or more "
                          f"({', '.join(repr(i) for i in repeated[:5])}): the output cannot be matched to them "
                          "(a DocBin of --split pieces? give the whole documents)")
    return sorted(docs, key=lambda d: d.id)


def jsonl_line_ids(path: Path, id_field: str = "id") -> List[Optional[str]]:
    """The converter's id (`<stem>-<line>`) of each non-blank line of a JSONL gold without an
    id, in the order the production command writes its output lines in; None for a line with
    an id (the command copies it: an output record without one is not this line's) or no
    JSON object."""
    path = Path(path)
    ids: List[Optional[str]] = []
    for lineno, line in enumerate(split_lines(read_text(path).lstrip("\ufeff")), start=1):
        if not line.encode("utf-8", "surrogatepass").strip():  # blank as the command sees it
            continue
        try:
            obj = json_line(line, f"{path}:{lineno}")
        except DataError:
            obj = None
        idless = isinstance(obj, dict) and obj.get(id_field) is None
        ids.append(f"{path.stem}-{lineno}" if idless else None)
    return ids


def output_records(path: Path, text_field: str = "text", id_field: str = "id",
                   line_ids: Optional[List[Optional[str]]] = None) -> Iterator[Tuple[Optional[str], Optional[str]]]:
    """(id, text) of each record of the command's JSONL output; the id is None when the record
    has none and `line_ids` (`jsonl_line_ids` of the JSONL the command read) does not give it,
    the text None for a document that failed. DataError naming the file and line for a line
    that is not a JSON object."""
    for n, (_, _, record) in enumerate(read_jsonl(path, text_field=None)):
        doc_id = record.get(id_field)
        if doc_id is None and line_ids is not None and n < len(line_ids):
            doc_id = line_ids[n]
        text = record.get(text_field)
        yield (None if doc_id is None else key(str(doc_id))), (text if isinstance(text, str) else None)


def read_outputs(path: Path, text_field: str = "text", id_field: str = "id",
                 ids: Optional[List[str]] = None,
                 line_ids: Optional[List[Optional[str]]] = None) -> Dict[str, str]:
    """De-identified texts by id.

    path (Path): a folder of `<id>.txt` files (ids given), or the command's JSONL output
        (records without an id or a string text are left out: `output_records` counts them).
    ids (Optional[List[str]]): the gold ids, for a folder.
    line_ids (Optional[List[Optional[str]]]): see `output_records`.
    RETURNS (Dict[str, str]): the texts by id.
    """
    path = Path(path)
    if path.is_dir():
        out: Dict[str, str] = {}
        for doc_id in ids or ():
            name = doc_id if doc_id.endswith(".txt") else f"{doc_id}.txt"
            if (path / name).is_file():
                out[key(doc_id)] = (path / name).read_bytes().decode("utf-8")
        return out
    return {doc_id: text for doc_id, text in output_records(path, text_field, id_field, line_ids)
            if doc_id is not None and text is not None}


def read_spans(path: Path, line_ids: Optional[List[Optional[str]]] = None) -> Dict[str, List[Dict]]:
    """Spans of each document of a `--spans-output` file (documents that failed are left out).
    `line_ids`: as `output_records`; the n-th row's "line N" id (a record without an id)
    becomes `line_ids[n]`, the converter's id of that record."""
    spans: Dict[str, List[Dict]] = {}
    for n, (_, _, row) in enumerate(read_jsonl(path, text_field=None)):
        if row.get("spans") is not None:
            doc_id = str(row["id"])
            if line_ids is not None and n < len(line_ids) and line_ids[n] and LINE_ID.fullmatch(doc_id):
                doc_id = line_ids[n]
            spans.setdefault(key(doc_id), row["spans"])
    return spans


def spans_line_ids(path: Path, gold_ids: List[str]) -> List[Optional[str]]:
    """For a DocBin gold: the converter's id of each row of a spans file whose id is the
    command's "line N" (a JSONL record without an id), in order: the gold id `<stem>-N`, when
    exactly one gold id has that form; None otherwise."""
    known = set(gold_ids)
    stems = {m.group(1) for doc_id in gold_ids if (m := re.fullmatch(r"(.+)-[0-9]+", doc_id))}
    ids: List[Optional[str]] = []
    for _, _, row in read_jsonl(path, text_field=None):
        line = LINE_ID.fullmatch(str(row.get("id")))
        found = [f"{stem}-{line.group(1)}" for stem in stems if line and f"{stem}-{line.group(1)}" in known]
        ids.append(found[0] if len(found) == 1 else None)
    return ids


def write_gold_texts(path: Path, output: Path, fmt: str = "auto", problems: Optional[Problems] = None,
                     part: Optional[str] = None) -> int:
    """Write the gold documents' texts as the production command's JSONL input, `{"id", "text"}`
    a line with the converter's ids, so that its output matches the gold in any format.

    path, fmt, problems, part: as `read_gold`.
    output (Path): the JSONL to write (atomically).
    RETURNS (int): the documents written.
    """
    docs = read_gold(path, fmt, problems, part)
    write_jsonl(({"id": d.id, "text": d.text} for d in docs), output)
    return len(docs)


def match_problem(n_gold: int, n_matched: int, gold_ids: List[str], output_ids: List[str],
                  without_id: int, output_path: Path, gold_path: Optional[Path] = None) -> Optional[str]:
    """Why the output cannot be checked against the gold, or None: no gold document has an
    output, or more than half have none (ids that differ: another corpus, or ids the command
    gave that the converter did not)."""
    if n_gold == 0:
        return f"{gold_path or output_path}: the gold holds no documents to check the output against"
    if n_matched * 2 >= n_gold:
        return None
    problem = f"{output_path}: only {n_matched} of {n_gold} gold documents have an output"
    if without_id:
        problem += (f"; {without_id} output records have no id (give the JSONL the command read "
                    "as GOLD, --format jsonl, or its --spans-output: they say which record each is)")
    examples = lambda ids: ", ".join(repr(i) for i in ids[:3]) or "none"  # noqa: E731
    return problem + f"; gold ids: {examples(gold_ids)}; output ids: {examples(output_ids)}"


class CheckInputs(NamedTuple):
    gold_docs: List[GoldDoc]
    outputs: Dict[str, str]
    spans: Optional[Dict[str, List[Dict]]]
    without_id: int  # output records with a text but no id


def load_inputs(gold: Path, output_path: Path, spans_path: Optional[Path] = None, fmt: str = "auto",
                part: Optional[str] = None, problems: Optional[Problems] = None, text_field: str = "text",
                id_field: str = "id", limit: int = 0) -> CheckInputs:
    """Everything the check reads: the gold (first `limit` documents by id; 0: all), the
    outputs and the spans, matched by the converter's ids (see the module's docstring).

    gold, fmt, part, problems: as `read_gold`. output_path (Path): what the command wrote.
    spans_path (Optional[Path]): its --spans-output. text_field / id_field (str): of the output.
    RETURNS (CheckInputs): the gold documents, outputs by id, spans by id (None without a
        spans file) and the output records left out for want of an id.
    """
    source, fmt = gold_source(gold, fmt, part)
    gold_docs = read_gold(source, fmt, problems)[: limit or None]
    output_path = Path(output_path)
    line_ids = None
    if fmt == "jsonl":
        line_ids = jsonl_line_ids(source)
    elif fmt == "docbin" and spans_path is not None:  # the spans' "line N" ids say which record
        line_ids = spans_line_ids(spans_path, [d.id for d in gold_docs])
    if output_path.is_dir():
        line_ids = None
    outputs = read_outputs(output_path, text_field, id_field, [d.id for d in gold_docs], line_ids)
    without_id = 0 if output_path.is_dir() else sum(
        doc_id is None and text is not None
        for doc_id, text in output_records(output_path, text_field, id_field, line_ids))
    spans = read_spans(spans_path, line_ids) if spans_path else None
    return CheckInputs(gold_docs, outputs, spans, without_id)
