"""Convert an annotated corpus (BRAT folder, CoNLL file or JSONL) to a DocBin, with a report.

The report says what was read (documents, tokens, words as `count_words` counts them,
entities per label) and lists every
span that did not align with tokens and every malformed item skipped under --lenient, by
file and line, never by its text: the corpus is private.
"""
from collections import Counter
from pathlib import Path
from typing import Dict

import spacy
from spacy.language import Language
from spacy.tokens import DocBin
from wasabi import msg

from clinical_deid.io import write_docbin
from clinical_deid.tokenizer import count_words  # importing it registers the project's tokenizer
from deid_synthesis.corpus.docs import record_to_doc, split_doc
from deid_synthesis.corpus.readers import read_corpus
from deid_synthesis.corpus.records import CorpusError, Problems, Record


def make_nlp(lang: str, tokenizer: str = "deid.clinical_tokenizer.v1") -> Language:
    """A blank pipeline with the tokenizer the training configs use.

    lang (str): the language code, e.g. "es".
    tokenizer (str): a registered tokenizer's name, or "default" for the language's own.
    RETURNS (Language): the blank pipeline.
    """
    if tokenizer == "default":
        return spacy.blank(lang)
    return spacy.blank(lang, config={"nlp": {"tokenizer": {"@tokenizers": tokenizer}}})


# Long: thirteen options, documented one a line; the body itself is about 40 lines.
def convert(
    input_path: Path,
    output_path: Path,
    fmt: str,
    lang: str,
    split: str = "none",
    max_words: int = 128,
    misaligned: str = "split",
    lenient: bool = False,
    encoding: str = "utf-8",
    tag_scheme: str = "auto",
    sents_per_doc: int = 10,
    text_field: str = "text",
    tokenizer: str = "deid.clinical_tokenizer.v1",
) -> Dict:
    """Read, align, split and write one part of a corpus; return the report (counts only, no text).

    input_path (Path): a BRAT folder, a CoNLL file or a JSONL file.
    output_path (Path): the DocBin (.spacy) to write. It is written to a temporary name and
        renamed at the end, so an error never leaves a half-written corpus behind.
    fmt (str): "brat", "conll" or "jsonl".
    lang (str): the language code of the blank pipeline.
    split (str): "none", "sentences" or "chunks" (of at most `max_words` words).
    max_words (int): most words (`count_words`) per chunk.
    misaligned (str): what to do with a span off token edges (see `docs.record_to_doc`).
    lenient (bool): skip and count malformed items instead of raising CorpusError.
    encoding, tag_scheme, sents_per_doc, text_field: options of the readers.
    tokenizer (str): a registered tokenizer, or "default".
    RETURNS (Dict): the report: counts per label, misaligned spans and skipped items by place.
    """
    nlp = make_nlp(lang, tokenizer)
    problems = Problems(lenient=lenient)
    misaligned_spans: list = []
    labels: Counter = Counter()
    source_labels: Counter = Counter()
    n_records = n_docs = n_tokens = n_words = 0
    docbin = DocBin(store_user_data=True)
    for record in read_corpus(input_path, fmt, problems, encoding, tag_scheme, sents_per_doc, text_field):
        if not fits_max_length(nlp, record, split, problems):
            continue
        n_records += 1
        source_labels.update(s.label for s in record.spans)
        doc = record_to_doc(nlp, record, misaligned, misaligned_spans)
        for part in split_doc(doc, split, max_words):
            n_docs += 1
            n_tokens += len(part)
            n_words += count_words(part)
            labels.update(ent.label_ for ent in part.ents)
            docbin.add(part)
    if n_records == 0:
        raise CorpusError(f"{input_path}: no documents found")
    write_docbin(docbin, output_path)
    n_entities = sum(labels.values())
    return {
        "input": str(input_path),
        "output": str(output_path),
        "format": fmt,
        "lang": lang,
        "split": split,
        "max_words": max_words if split != "none" else None,
        "source_documents": n_records,
        "documents": n_docs,
        "tokens": n_tokens,
        "words": n_words,
        "entities": n_entities,
        "entities_per_label": dict(labels.most_common()),
        "source_spans": sum(source_labels.values()),
        "misaligned_policy": misaligned,
        "misaligned": misaligned_spans,
        "skipped": dict(problems.counts),
        "skipped_where": problems.where,
        "trimmed": problems.noted.get("trimmed_whitespace", []),
        "noted": problems.noted,
        "warnings": entity_warnings(fmt, n_entities, sum(source_labels.values()))
        + problems.warnings + noted_warnings(problems.noted),
    }


def fits_max_length(nlp: Language, record: Record, split: str, problems: Problems) -> bool:
    """A text over spaCy's `max_length` (1,000,000 characters) is an error of its record,
    unless it is cut into sentences or chunks: then the tokenizer takes it whole.

    nlp (Language): the blank pipeline; its max_length is raised for such a record.
    record (Record): the record read.
    split (str): the --split mode.
    problems (Problems): where a record too long is raised or (lenient) counted.
    RETURNS (bool): whether to convert the record.
    """
    if len(record.text) <= nlp.max_length:
        return True
    if split != "none":
        nlp.max_length = len(record.text)
        return True
    problems.add("text_too_long", record.where or record.source,
                 f"a text of {len(record.text):,} characters is over spaCy's limit of "
                 f"{nlp.max_length:,}: cut the note, or convert with --split sentences or chunks")
    return False


def noted_warnings(noted: Dict[str, list]) -> list:
    """Warnings for items read but worth a look: each names its first places. (Trimmed spans
    are repairs, not warnings: `print_report` says how many.)"""
    texts = {"entity_across_sentence_break": "entity(ies) continue across a sentence break and were "
                                             "split in two (join the sentences, or fix the tags)"}
    warnings = []
    for kind, places in noted.items():
        if kind in texts:
            more = f" and {len(places) - 3} more" if len(places) > 3 else ""
            warnings.append(f"{len(places)} {texts[kind]}: at {', '.join(places[:3])}{more}")
    return warnings


def entity_warnings(fmt: str, n_entities: int, n_source_spans: int) -> list:
    """A corpus with no entities at all is almost always a mistake of format or field names.

    (Issue 12: JSONL spans under another key converted to 0 entities with a success mark.)
    """
    if n_entities > 0:
        return []
    if n_source_spans > 0:
        return [f"none of the {n_source_spans} spans read became an entity (see 'misaligned')"]
    hint = {"jsonl": "are the spans under the key 'spans', as {'start', 'end', 'label'} objects?",
            "brat": "are there T lines in the .ann files?",
            "conll": "are the tags in the last column?"}.get(fmt, "")
    return [f"the corpus has no entities at all: {hint}"]


def print_report(report: Dict) -> None:
    """Print a conversion report: counts and where to look, never the corpus's text."""
    msg.divider(f"{report['input']} ({report['format']})")
    msg.info(
        f"{report['source_documents']:,} source documents → {report['documents']:,} docs, "
        f"{report['tokens']:,} tokens, {report['words']:,} words, {report['entities']:,} entities"
    )
    msg.table(list(report["entities_per_label"].items()), header=("label", "entities"), divider=True)
    if report["misaligned"]:
        by_label = Counter(m["label"] for m in report["misaligned"])
        msg.warn(
            f"{len(report['misaligned'])} spans did not align with tokens "
            f"(policy '{report['misaligned_policy']}'): {dict(by_label)}; see the report for where"
        )
    if report["skipped"]:
        msg.warn(f"Skipped malformed items (--lenient): {report['skipped']}")
    if report.get("trimmed"):
        msg.info(f"{len(report['trimmed'])} span(s) had white space at an edge and were trimmed to "
                 f"the characters they name (first at {report['trimmed'][0]})")
    for warning in report.get("warnings", []):
        msg.divider("WARNING")
        msg.warn(warning)
    wrote = f"Wrote {report['documents']:,} documents → {report['output']}"
    if report.get("warnings"):  # no success mark over a warning (issue 12)
        msg.warn(f"{wrote}, with {len(report['warnings'])} warning(s) above")
    else:
        msg.good(wrote)
