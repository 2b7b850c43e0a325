"""Convert an annotated corpus (BRAT folder, CoNLL file or JSONL) to a DocBin, with a report.

The report says what was read (documents, tokens, entities per label) and lists every
span that did not align with tokens and every malformed item skipped under --lenient, by
file and line, never by its text: the corpus is private.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, Optional

import spacy
import srsly
import typer
from spacy.tokens import DocBin
from wasabi import msg

import clinical_deid.tokenizer  # noqa: F401  (registers the project's tokenizer)
from deid_synthesis.corpus_readers import CorpusError, Problems, read_corpus
from deid_synthesis.make_docs import count_words, record_to_doc, split_doc


def make_nlp(lang: str, tokenizer: str = "deid.clinical_tokenizer.v1"):
    """A blank pipeline with the tokenizer the training configs use ('default': the language's)."""
    if tokenizer == "default":
        return spacy.blank(lang)
    return spacy.blank(lang, config={"nlp": {"tokenizer": {"@tokenizers": tokenizer}}})


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
    """Read, align, split and write; return the report (counts only, no text).

    The DocBin is written to a temporary name and renamed at the end, so an error never
    leaves a half-written corpus behind.
    """
    nlp = make_nlp(lang, tokenizer)
    problems = Problems(lenient=lenient)
    misaligned_spans: list = []
    labels: Counter = Counter()
    source_labels: Counter = Counter()
    n_records = n_docs = n_tokens = n_words = 0
    docbin = DocBin(store_user_data=True)
    for record in read_corpus(input_path, fmt, problems, encoding, tag_scheme, sents_per_doc, text_field):
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
    write_atomically(docbin, Path(output_path))
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
        "warnings": entity_warnings(fmt, n_entities, sum(source_labels.values())),
    }


def write_atomically(docbin: DocBin, output_path: Path) -> None:
    """Write to a temporary name and rename: a failure leaves neither output nor temp file."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = output_path.with_name(output_path.name + ".tmp")
    try:
        docbin.to_disk(tmp_path)
        tmp_path.replace(output_path)
    finally:
        tmp_path.unlink(missing_ok=True)


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
    for warning in report.get("warnings", []):
        msg.divider("WARNING")
        msg.warn(warning)
    msg.good(f"Wrote {report['documents']:,} documents → {report['output']}")


def main(
    input_path: Path = typer.Argument(..., help="BRAT folder, CoNLL file or JSONL file"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (DocBin)"),
    fmt: str = typer.Option(..., "--format", "-f", help="brat, conll or jsonl"),
    lang: str = typer.Option(..., "--lang", "-l", help="Language code, e.g. es or sv"),
    split: str = typer.Option("none", "--split", help="none, sentences or chunks"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per chunk (--split chunks)"),
    misaligned: str = typer.Option("split", "--misaligned", help="split, expand, contract, skip or error"),
    lenient: bool = typer.Option(False, "--lenient", help="Skip and count malformed items instead of stopping"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Input encoding (utf-8 keeps BRAT BOM offsets right)"),
    tag_scheme: str = typer.Option("auto", "--tag-scheme", help="CoNLL tags: auto, io, bio or bilou"),
    sents_per_doc: int = typer.Option(10, "--sents-per-doc", help="CoNLL sentences per document"),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field holding the text"),
    tokenizer: str = typer.Option("deid.clinical_tokenizer.v1", "--tokenizer", help="Registered tokenizer, or 'default'"),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the report as JSON here"),
):
    """Convert a corpus to a DocBin and report what was read."""
    try:
        report = convert(input_path, output_path, fmt, lang, split, max_words, misaligned,
                         lenient, encoding, tag_scheme, sents_per_doc, text_field, tokenizer)
    except CorpusError as err:
        msg.fail(str(err), exits=1)
    print_report(report)
    if report_path is not None:
        srsly.write_json(report_path, report)


if __name__ == "__main__":
    typer.run(main)
