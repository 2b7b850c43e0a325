"""Demo corpus: synthetic clinical notes with PHI spans, written by this project.

THIS IS A DEMO, NOT CLINICAL DATA. Every note is template text (a pool of hand-written header
fields and ~27 narrative sentences per language, in `es.json`, `sv.json` and `de.json`) with
PHI slots filled by Faker's locale providers (es_ES, sv_SE, de_DE: names, cities, streets,
postcodes, phone numbers, e-mails, countries, jobs, companies) and a few small word lists;
hospitals are built from Faker city names ("Hospital General de Soria", "Lidköpings lasarett",
"Klinikum Paderborn"). It exists so that new users can run the whole workflow offline, end to
end, before they bring their own annotated corpus.

The notes are far easier than real clinical text: the vocabulary is small, every PHI value
sits in a handful of fixed contexts, there are no typos, no abbreviation soup, no ambiguous
mentions and no annotation disagreement. Models trained or evaluated on it will score very
high, and those scores mean nothing about performance on real notes. Do not report them.

Label sets: MEDDOCAN's for Spanish (`es.py`), the Stockholm EPR PHI corpus's for Swedish
(`sv.py`), and for German (`de.py`) one of its own (NAME_PATIENT, LOCATION_ZIP, CONTACT_PHONE,
ID_INSURANCE ...) that no preset knows, as a stranger's corpus would bring. Output documents
are `{"id", "text", "spans": [{"start", "end", "label"}]}` with character offsets; spans are
sorted, non-overlapping, and every span lines up with the tokens of the clinical tokenizer
the training configs use (and, for es and sv, with those of `spacy.blank(lang)`, as they
have always been drawn): checked while generating, a note that does not line up is drawn
again, deterministically. The same arguments always give the same files byte for byte; each
split (and each language) is drawn from its own seed.
"""
from __future__ import annotations

import functools
import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Sequence, Tuple

import spacy
import srsly
from faker import Faker
from spacy.language import Language

from clinical_deid.io import atomic_path
from clinical_deid.tokenizer import create_clinical_tokenizer
from deid_synthesis.corpus.card import CARD_FILE
from deid_synthesis.corpus.demo import de, es, sv
from deid_synthesis.corpus.demo.values import Segment, language_data, render_template, words_of

SPLITS: Tuple[str, ...] = ("train", "dev", "test")
LABELS_ES: Tuple[str, ...] = tuple(language_data("es")["labels"])
LABELS_SV: Tuple[str, ...] = tuple(language_data("sv")["labels"])
LABELS_DE: Tuple[str, ...] = tuple(language_data("de")["labels"])
LABELS: Dict[str, Tuple[str, ...]] = {"es": LABELS_ES, "sv": LABELS_SV, "de": LABELS_DE}

# A note's length in whitespace-separated words (the demo's own measure, not count_words).
MIN_WORDS = 60
# What every report of a run on the demo says first (deid_synthesis.corpus.card).
DEMO_CARD = {"demo": True, "about": ("the embedded demo corpus: template clinical notes filled with Faker values "
                                     "(python -m scripts.demo_corpus), far easier than real notes. Figures on it "
                                     "show that every step runs and that the method learns the notes' form; they "
                                     "say nothing about real clinical data.")}
MAX_WORDS = 150
MAX_SENTENCES = 6


class LanguageParts(NamedTuple):
    """What the generator needs of a language: its slots, its header, its narrative, and
    whether its notes must also line up with `spacy.blank(lang)` (es and sv: kept, so that
    their corpora stay byte-identical for a seed; German's own tokenizer keeps "67-jährige"
    and "2019." whole, which the clinical tokenizer splits)."""

    context: Callable[[Faker, random.Random], Dict[str, List[Segment]]]
    header: Callable[[Dict[str, List[Segment]], random.Random], List[Segment]]
    narrative: Sequence[str]
    blank_aligned: bool = False


LANGUAGES: Dict[str, LanguageParts] = {
    "es": LanguageParts(es.context, es.header, es.DATA["narrative"], blank_aligned=True),
    "sv": LanguageParts(sv.context, sv.header, sv.DATA["narrative"], blank_aligned=True),
    "de": LanguageParts(de.context, de.header, de.DATA["narrative"]),
}


class _Builder:
    """Accumulates text and character-offset spans."""

    def __init__(self) -> None:
        self.parts: List[str] = []
        self.length = 0
        self.spans: List[Dict[str, object]] = []

    def add(self, text: str, label: str | None = None) -> None:
        if label is not None:
            if not text or text != text.strip():
                raise ValueError(f"entity text for {label} is empty or has edge whitespace")
            self.spans.append({"start": self.length, "end": self.length + len(text), "label": label})
        self.parts.append(text)
        self.length += len(text)

    def add_segments(self, segments: Iterable[Segment]) -> None:
        for text, label in segments:
            self.add(text, label)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _check_lang(lang: str) -> None:
    if lang not in LABELS:
        raise ValueError(f"unsupported language {lang!r}; choose one of {sorted(LABELS)}")


def _draw_document(lang: str, fake: Faker, rng: random.Random) -> Tuple[str, List[Dict[str, object]]]:
    """One note's text and spans: a header and 2 to 6 narrative sentences, told in order."""
    language = LANGUAGES[lang]
    slots = language.context(fake, rng)
    header = language.header(slots, rng)
    order = list(range(len(language.narrative)))
    rng.shuffle(order)
    n_sentences = rng.randint(2, MAX_SENTENCES)
    chosen: List[Tuple[int, List[Segment]]] = []
    words = words_of(header)
    # Draw sentences in random order until the note has n_sentences sentences and enough
    # words (never more than MAX_SENTENCES or MAX_WORDS), then tell them in the pool's order.
    for index in order:
        if len(chosen) >= MAX_SENTENCES or (len(chosen) >= n_sentences and words >= MIN_WORDS):
            break
        sentence = render_template(language.narrative[index], slots)
        if words + words_of(sentence) > MAX_WORDS:
            continue
        chosen.append((index, sentence))
        words += words_of(sentence)
    chosen.sort(key=lambda item: item[0])
    builder = _Builder()
    builder.add_segments(header)
    for i, (_, sentence) in enumerate(chosen):
        if i:
            builder.add("\n" if rng.random() < 0.2 else " ")
        builder.add_segments(sentence)
    return builder.text, builder.spans


@functools.lru_cache(maxsize=None)
def _tokenizing(lang: str, clinical: bool) -> Language:
    """spacy.blank(lang), with the clinical tokenizer (deid.clinical_tokenizer.v1) or its own."""
    nlp = spacy.blank(lang)
    if clinical:
        nlp.tokenizer = create_clinical_tokenizer()(nlp)
    return nlp


def misaligned_spans(text: str, spans: Sequence[Dict[str, object]], lang: str) -> List[Dict[str, object]]:
    """Spans whose offsets do not fall on token boundaries: those of the clinical tokenizer,
    and for es and sv those of `spacy.blank(lang)` too (see LanguageParts).

    text (str): the note.
    spans (Sequence[Dict[str, object]]): its spans, with "start" and "end".
    lang (str): the note's language.
    RETURNS (List[Dict[str, object]]): the spans that do not line up.
    """
    clinical_or_own = (True, False) if LANGUAGES[lang].blank_aligned else (True,)
    docs = [_tokenizing(lang, clinical).make_doc(text) for clinical in clinical_or_own]
    return [s for s in spans if any(doc.char_span(s["start"], s["end"]) is None for doc in docs)]


def generate_document(
    lang: str, fake: Faker, rng: random.Random, doc_id: str, max_tries: int = 50
) -> Dict[str, object]:
    """One demo note `{"id", "text", "spans"}`, drawn from FAKE and RNG.

    Notes whose spans do not line up with spaCy's tokenizer (or fall outside the word range)
    are drawn again from the same generators, so the result is still a deterministic
    function of the generators' state.
    """
    _check_lang(lang)
    for _ in range(max_tries):
        text, spans = _draw_document(lang, fake, rng)
        if not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
            continue
        if misaligned_spans(text, spans, lang):
            continue
        return {"id": doc_id, "text": text, "spans": spans}
    raise RuntimeError(f"could not draw a valid {lang} demo note in {max_tries} tries")


def split_seed(seed: int, lang: str, split: str) -> int:
    """Seed for one (language, split): stable across runs and Python versions."""
    digest = hashlib.sha256(f"demo-corpus|{lang}|{split}|{seed}".encode("utf8")).hexdigest()
    return int(digest[:12], 16)


def generate_split(lang: str, split: str, n: int, seed: int = 0) -> List[Dict[str, object]]:
    """N demo notes for one split, ids `demo-{lang}-{split}-0001`...

    lang (str): "es", "sv" or "de".
    split (str): "train", "dev" or "test" (each draws from its own seed).
    n (int): how many notes.
    seed (int): the corpus's seed.
    RETURNS (List[Dict[str, object]]): the notes.
    """
    _check_lang(lang)
    split_specific = split_seed(seed, lang, split)
    fake = Faker(language_data(lang)["faker_locale"])
    fake.seed_instance(split_specific)
    rng = random.Random(split_specific + 1)
    return [generate_document(lang, fake, rng, f"demo-{lang}-{split}-{i:04d}") for i in range(1, n + 1)]


def generate_corpus(
    lang: str, n_train: int = 300, n_dev: int = 60, n_test: int = 60, seed: int = 0
) -> Dict[str, List[Dict[str, object]]]:
    """All three splits, keyed "train", "dev", "test"."""
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return {split: generate_split(lang, split, sizes[split], seed) for split in SPLITS}


def entity_counts(docs: Iterable[Dict[str, object]]) -> Counter:
    """Number of spans per label."""
    return Counter(span["label"] for doc in docs for span in doc["spans"])


def write_corpus(output_dir: Path, corpus: Dict[str, List[Dict[str, object]]]) -> Dict[str, Path]:
    """Write each split to `output_dir/{split}.jsonl` and the corpus card saying that this is the
    demo (atomically); returns the paths.

    srsly's compact, ASCII-escaped JSON lines, as the demo has always been written (the
    corpus stays byte-identical for a seed).
    """
    output_dir = Path(output_dir)
    paths = {}
    for split, docs in corpus.items():
        paths[split] = output_dir / f"{split}.jsonl"
        with atomic_path(paths[split]) as tmp:
            srsly.write_jsonl(tmp, docs)
    paths["card"] = output_dir / CARD_FILE
    with atomic_path(paths["card"]) as tmp:
        srsly.write_json(tmp, DEMO_CARD)
    return paths
