"""Prompts for generation: the first words of each dev note, its annotated PHI replaced first.

Prompts are the first `prompt_words` (3) words of each document of the dev split, as in
the paper, with the note's annotated PHI replaced first: the dev DocBin's gold entities go
through the project's `deid_transform` (pseudonymize, seeded with the run seed, drawing no
identifying PHI string of the dev split) and the prompt is cut from its output, so a real
name at the start of a note becomes a surrogate name. Values with no surrogate (a "[SEXO]"
placeholder, masked text) and words still holding a PHI string of the note are left out:
the prompt starts after such words and ends before the next ones (one unbroken run of text,
shorter rather than with a gap). Each prompt records `phi` (method, words, words replaced,
words dropped; never the original words). Words in this module are whitespace-separated
words, not the project's `count_words`: the paper's "3-word prompts", and the unit the prompt
check (`privacy.prompts`) cuts samples' openings by; every size figure of the generation
step counts `count_words` (see `generate`). A dev document without entity annotation is
refused (its PHI cannot be found) unless `raw` (unsafe: the real openings, PHI included, in
the prompts and every sample). `python -m scripts.privacy prompts SAMPLES DEV` checks a
produced run. No torch here.
"""
import re
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
from spacy.tokens import Doc

from clinical_deid.io import DataError, read_docbin
from clinical_deid.transform import DeidTransform
from deid_synthesis.privacy import PhiIndex, find_phi_runs, phi_word_runs
from deid_synthesis.privacy.prompts import first_words  # one cut for the prompts and the prompt check


class GenerateError(ValueError):
    """Input or options the generation step cannot use (the message names the file, never its text)."""


# Kinds whose values get no surrogate under pseudonymize: their words are left out of a prompt.
NO_SURROGATE = ("redact", "mask", "keep")


def read_dev_docs(path: Path) -> List[Doc]:
    """The dev split's Docs with their gold entities (the file is named on failure, no text)."""
    try:
        return read_docbin(path, spacy.blank("xx").vocab)
    except DataError as err:
        raise GenerateError(f"{err} (run the convert step first)") from None


def prompt_transform(docs: List[Doc], lang: str, seed: int) -> DeidTransform:
    """deid_transform in pseudonymize mode, seeded with the run seed (prompts are the same for a
    given seed), whose surrogates hold no identifying PHI string of the dev split (annotated
    in one document, as `privacy` counts them): a drawn name must not be another patient's."""
    index = PhiIndex(docs, min_chars=3, max_gold_docs=1)
    return DeidTransform("prompt_deid", lang, mode="pseudonymize", seed=seed,
                         avoid_strings=frozenset(index.strings[i] for i in index.identifying))


def _overlaps(word: re.Match, spans: List[Tuple[int, int]]) -> bool:
    return any(word.start() < end and start < word.end() for start, end in spans)


def surrogate_prompt(doc: Doc, transform: DeidTransform, n_words: int) -> Tuple[str, Dict]:
    """The first n words of the note with its annotated PHI replaced by surrogates, and what
    was done to them (counts only).

    Holes are the words of a value with no surrogate (redacted, masked, an overlong kept
    span) and words still holding a PHI string of the note as whole words, case and accents
    ignored (a surrogate that happens to be a real value, or an unannotated mention). A
    prompt is one unbroken run of the text: it starts after the leading holes and ends before
    the next hole, so it may be shorter than n words but never reads "[SEXO]" or has a gap.
    """
    transform(doc)
    out = doc._.deidentified
    holes, replaced = [], []
    for span in doc._.deid_spans:
        where = (span["out_start"], span["out_end"])
        if span["kind"] == "keep" and span["replacement"] == doc.text[span["start"]:span["end"]]:
            continue  # not PHI under this label map: left as it is
        (holes if span["kind"] in NO_SURROGATE else replaced).append(where)
    holes += [(start, end) for start, end, _ in find_phi_runs(out, phi_word_runs(doc))]
    words = list(re.finditer(r"\S+", out))
    i = 0
    while i < len(words) and _overlaps(words[i], holes):
        i += 1
    lead, chosen = i, []
    while i < len(words) and len(chosen) < n_words and not _overlaps(words[i], holes):
        chosen.append(words[i])
        i += 1
    cut = 0
    while i < len(words) and len(chosen) + cut < n_words and _overlaps(words[i], holes):
        cut += 1
        i += 1
    text = out[chosen[0].start(): chosen[-1].end()] if chosen else ""
    return text, {"method": "surrogates", "words": len(chosen),
                  "replaced": sum(_overlaps(w, replaced) for w in chosen), "dropped": lead + cut}


def make_prompts(dev_path: Path, n_words: int = 3, lang: str = "es", seed: int = 0,
                 raw: bool = False) -> List[Dict]:
    """[{"id", "text", "phi"}]: one prompt per dev document with text (see `surrogate_prompt`).

    `raw` takes the real openings as they are (unsafe); otherwise every document must carry
    entity annotation (possibly none), else its PHI would pass unseen into the prompt.

    dev_path (Path): the gold dev DocBin.
    n_words (int): whitespace-separated words per prompt.
    lang (str): the surrogates' locale.
    seed (int): the run seed (the surrogates drawn).
    raw (bool): take the real openings as they are.
    RETURNS (List[Dict]): the prompts, in document order.
    """
    docs = read_dev_docs(dev_path)
    transform = None if raw else prompt_transform(docs, lang, seed)
    prompts = []
    for i, doc in enumerate(docs):
        doc_id = str(doc.user_data.get("id", i))
        if not doc.text.strip():
            continue
        if raw:
            text = first_words(doc.text, n_words)
            phi = {"method": "raw", "words": len(text.split()), "replaced": 0, "dropped": 0}
        elif not doc.has_annotation("ENT_IOB"):
            raise GenerateError(
                f"{dev_path}: document {doc_id} (#{i}) has no entity annotation, so the PHI of its prompt cannot "
                "be replaced; give the gold dev DocBin, or --raw-prompts to use the real openings as they are "
                "(unsafe: real PHI in the prompts and every sample)")
        else:
            text, phi = surrogate_prompt(doc, transform, n_words)
        if text:
            prompts.append({"id": doc_id, "text": text, "phi": phi})
    if not prompts:
        raise GenerateError(f"{dev_path}: no document with text to take prompts from")
    return prompts


def prompt_summary(prompts: List[Dict], n_words: int) -> Dict:
    """Totals of the prompts' `phi` records for the report (counts only; whitespace-separated words)."""
    phis = [p["phi"] for p in prompts]
    return {"method": phis[0]["method"] if phis else None, "prompts": len(phis),
            "prompts_with_surrogates": sum(1 for p in phis if p["replaced"]),
            "words_replaced": sum(p["replaced"] for p in phis),
            "prompts_with_dropped_words": sum(1 for p in phis if p["dropped"]),
            "words_dropped": sum(p["dropped"] for p in phis),
            "prompts_shorter_than_asked": sum(1 for p in phis if p["words"] < n_words)}
