"""Verbatim PHI reproduction: which real PHI strings occur, word for word, in synthetic notes.

A string annotated in many real notes ("Madrid", "varón") identifies no one, so the figures
are also given for the *identifying* strings: those annotated in at most `max_gold_docs` real
documents (default 1). Strings shorter than `min_chars` or without a letter or digit are not
counted at all. Strings are matched verbatim (case-sensitive unless `ignore_case`, whitespace
runs treated as one space) at word boundaries: "Ana" does not match inside "Ana" + "lía".
"""
import re
from collections import Counter, defaultdict
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc

from deid_synthesis.privacy.ngrams import WORD

NON_SPACE = re.compile(r"\S+")


def normalise(text: str, ignore_case: bool) -> str:
    """The text with whitespace runs as one space, lower-cased when `ignore_case`."""
    text = " ".join(text.split())
    return text.lower() if ignore_case else text


def normalise_with_offsets(text: str, ignore_case: bool) -> Tuple[str, List[int]]:
    """`normalise`'s text, and for each of its characters the offset in `text` it comes from
    (a space standing for a whitespace run: the run's first character)."""
    chars: List[str] = []
    origin: List[int] = []
    for match in NON_SPACE.finditer(text):
        if chars:
            chars.append(" ")
            origin.append(origin[-1] + 1)
        for offset, char in enumerate(match.group(), match.start()):
            folded = char.lower() if ignore_case else char
            chars.extend(folded)
            origin.extend([offset] * len(folded))
    return "".join(chars), origin


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class PhiIndex:
    """The distinct PHI strings of gold Docs, and a word-boundary search for them in a text.

    Strings are indexed by their first word: a text is scanned word by word and only the
    strings starting with that word are compared, so thousands of strings cost about as
    much as one pass over the text.
    """

    def __init__(self, gold_docs: Iterable[Doc], min_chars: int = 3, max_gold_docs: Optional[int] = 1,
                 ignore_case: bool = False, labels: Optional[Sequence[str]] = None,
                 frequency_docs: Optional[Iterable[Doc]] = None):
        """Index the annotated strings of `gold_docs`.

        gold_docs (Iterable[Doc]): the real documents whose PHI strings are searched for.
        min_chars (int): strings shorter than this are skipped (counted in `skipped`).
        max_gold_docs (Optional[int]): a string is identifying when annotated in at most this
            many documents (None: every string is).
        ignore_case (bool): match regardless of case.
        labels (Optional[Sequence[str]]): only these labels (None: all).
        frequency_docs (Optional[Iterable[Doc]]): where to count in how many documents a string
            is annotated (default: `gold_docs`; pass the whole gold file when `gold_docs` is a
            small part of it).
        """
        self.ignore_case, self.min_chars, self.max_gold_docs = ignore_case, min_chars, max_gold_docs
        self.skipped: Counter = Counter()
        sources_of_string = self._annotated(gold_docs, labels, self.skipped)  # (label, string) -> gold docs
        self.strings: List[str] = sorted({string for _, string in sources_of_string})
        string_id = {string: i for i, string in enumerate(self.strings)}
        self.by_label: Dict[str, Set[int]] = defaultdict(set)
        # The documents of `gold_docs` annotating each string (record linkage: which real note a string is of).
        self.sources: Dict[int, Set[str]] = defaultdict(set)
        for (label, string), sources in sources_of_string.items():
            self.by_label[label].add(string_id[string])
            self.sources[string_id[string]] |= sources
        if frequency_docs is not None:
            sources_of_string = self._annotated(frequency_docs, labels, Counter())
        sources_of_id: Dict[int, Set[str]] = defaultdict(set)  # under any label
        for (label, string), sources in sources_of_string.items():
            if string in string_id:
                sources_of_id[string_id[string]] |= sources
        self.doc_frequency = {i: len(sources_of_id[i]) for i in range(len(self.strings))}
        # Identifying: annotated in few gold documents (whatever the label).
        self.identifying: Set[int] = {i for i, count in self.doc_frequency.items()
                                      if max_gold_docs is None or count <= max_gold_docs}
        self._by_first_word = self._first_words(self.strings)

    @staticmethod
    def _first_words(strings: Sequence[str]) -> Dict[str, List[Tuple[int, str, int]]]:
        """The strings by their first word: (its offset, the string, its index)."""
        by_first_word: Dict[str, List[Tuple[int, str, int]]] = defaultdict(list)
        for i, string in enumerate(strings):
            first = WORD.search(string)
            by_first_word[first.group()].append((first.start(), string, i))
        return by_first_word

    @classmethod
    def of_strings(cls, strings: Iterable[str]) -> "PhiIndex":
        """An index of given (already normalised) strings, all identifying, without labels:
        for locating strings gathered elsewhere (`spans`)."""
        index = cls([], max_gold_docs=None)
        index.strings = sorted(set(strings))
        index.doc_frequency = {i: 1 for i in range(len(index.strings))}
        index.identifying = set(range(len(index.strings)))
        index._by_first_word = cls._first_words(index.strings)
        return index

    def _annotated(self, docs: Iterable[Doc], labels: Optional[Sequence[str]],
                   skipped: Counter) -> Dict[Tuple[str, str], Set[str]]:
        """(label, normalised string) -> the source ids of the documents annotating it."""
        sources_of_string: Dict[Tuple[str, str], Set[str]] = defaultdict(set)
        for i, doc in enumerate(docs):
            # Chunks of one document count as one document.
            source = str(doc.user_data.get("source_id") or doc.user_data.get("id") or i)
            for ent in doc.ents:
                if labels and ent.label_ not in labels:
                    continue
                string = normalise(ent.text, self.ignore_case)
                if len(string) < self.min_chars or not any(char.isalnum() for char in string):
                    skipped[ent.label_] += 1
                    continue
                sources_of_string[(ent.label_, string)].add(source)
        return sources_of_string

    def _matches(self, text: str) -> Iterator[Tuple[int, int, int]]:
        """(start, end, string index) of every occurrence in an already normalised text."""
        for match in WORD.finditer(text):
            for offset, string, i in self._by_first_word.get(match.group(), ()):
                start = match.start() - offset
                end = start + len(string)
                if start < 0 or not text.startswith(string, start):
                    continue
                if is_word_char(string[0]) and start > 0 and is_word_char(text[start - 1]):
                    continue
                if is_word_char(string[-1]) and end < len(text) and is_word_char(text[end]):
                    continue
                yield start, end, i

    def find(self, text: str) -> Set[int]:
        """The strings that occur in the text.

        text (str): the text to search.
        RETURNS (Set[int]): indices into `self.strings`.
        """
        return {i for _, _, i in self._matches(normalise(text, self.ignore_case))}

    def spans(self, text: str) -> List[Tuple[int, int, int]]:
        """Where the strings occur, as offsets of the text itself (not of its normalised form):
        (start, end, string index), sorted, without overlaps (the longest of overlapping
        occurrences is kept). What `find` finds, located, for replacing it.

        text (str): the text to search.
        RETURNS (List[Tuple[int, int, int]]): the occurrences.
        """
        normalised, origin = normalise_with_offsets(text, self.ignore_case)
        found = sorted(((origin[start], origin[end - 1] + 1, i) for start, end, i in self._matches(normalised)),
                       key=lambda m: (m[0], m[0] - m[1]))
        kept: List[Tuple[int, int, int]] = []
        for start, end, i in found:
            if not kept or start >= kept[-1][1]:
                kept.append((start, end, i))
        return kept


def phi_reproduction(gold_docs: Iterable[Doc], synth_texts: Iterable[str], min_chars: int = 3,
                     max_gold_docs: Optional[int] = 1, ignore_case: bool = False,
                     labels: Optional[Sequence[str]] = None, show_strings: bool = False,
                     index: Optional[PhiIndex] = None) -> Dict:
    """Distinct gold PHI strings found verbatim in the synthetic text, per label and in total.

    gold_docs (Iterable[Doc]): the real documents (unused when `index` is given).
    synth_texts (Iterable[str]): the synthetic notes.
    min_chars, max_gold_docs, ignore_case, labels: as `PhiIndex` (when `index` is None).
    show_strings (bool): add the reproduced strings themselves (private!).
    index (Optional[PhiIndex]): a ready index of the gold strings.
    RETURNS (Dict): per label and in total: `strings` (distinct strings considered),
        `reproduced` (of those, found in the synthetic text), `synthetic_docs` (synthetic notes
        containing at least one), and the same three for the identifying strings
        (`identifying_*`).
    """
    index = index or PhiIndex(gold_docs, min_chars, max_gold_docs, ignore_case, labels)
    notes_with: Counter = Counter()  # string index -> synthetic notes containing it
    found_per_note: List[Set[int]] = []
    n_synth = 0
    for text in synth_texts:
        n_synth += 1
        found = index.find(text)
        notes_with.update(found)
        if found:
            found_per_note.append(found)

    def figures(ids: Set[int]) -> Dict:
        identifying = ids & index.identifying
        row = {"strings": len(ids), "reproduced": sum(1 for i in ids if notes_with[i]),
               "synthetic_docs": sum(1 for found in found_per_note if found & ids),
               "identifying_strings": len(identifying),
               "identifying_reproduced": sum(1 for i in identifying if notes_with[i]),
               "identifying_synthetic_docs": sum(1 for found in found_per_note if found & identifying)}
        if show_strings:
            row["reproduced_strings"] = sorted(index.strings[i] for i in ids if notes_with[i])
        return row

    per_label = {label: figures(ids) for label, ids in sorted(index.by_label.items(), key=lambda kv: -len(kv[1]))}
    return {"synthetic_documents": n_synth, "min_chars": index.min_chars, "max_gold_docs": index.max_gold_docs,
            "ignore_case": index.ignore_case, "skipped_short": sum(index.skipped.values()),
            "per_label": per_label, "total": figures(set(range(len(index.strings))))}
