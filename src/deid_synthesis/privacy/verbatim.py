"""The real identifying PHI strings still in a synthetic text, located: for the second pass of
`pseudonymize-synthetic` (which replaces them) and the release gate (which must find none).

The annotator misses some PHI, so replacing its spans leaves some real strings behind. This
index holds the identifying strings of every real split a run touched (annotated in at most
`max_gold_docs` documents of their split, 3+ characters: what `privacy` counts), with the gold
label each carries most often, in memory only. `find` locates their verbatim occurrences
(`PhiIndex`'s matching: case-sensitive, whitespace runs as one space, whole words);
`near_verbatim` counts the forms that are not verbatim: the same string in another case,
accent or spacing (unless that form is also a common, non-identifying value: "MADRID" annotated
once is "Madrid"), and a distinctive word (4+ letters) of a multi-word name or institution
alone. Counts and labels leave this module; strings never do.
"""
from collections import Counter, defaultdict
from typing import Callable, Dict, List, Sequence, Set, Tuple

from spacy.tokens import Doc

from clinical_deid.folding import WORD as FOLDED_WORD
from clinical_deid.folding import fold, folded_text
from deid_synthesis.privacy.phi import PhiIndex, normalise

# A word of a name shorter than this identifies no one on its own ("de", "Dr", "Ana").
MIN_PART_CHARS = 4


def no_part_labels(label: str) -> bool:
    return False


def distinctive_words(docs: Sequence[Doc], max_gold_docs: int, is_part_label: Callable[[str], bool]) -> Set[str]:
    """The words (folded, 4+ letters) of the multi-word strings of part labels that identify on
    their own: in the PHI strings of at most `max_gold_docs` documents and nowhere in the real
    text outside PHI ("Beltrán" of one patient's name; not "García", "Hospital" nor the
    "medicina" of an institution's name)."""
    sources: Dict[str, Set[str]] = defaultdict(set)  # chunks of one document count once, as in PhiIndex
    candidates: Set[str] = set()
    ordinary: Set[str] = set()
    for i, doc in enumerate(docs):
        source = str(doc.user_data.get("source_id") or doc.user_data.get("id") or i)
        text, pos = doc.text, 0
        for ent in doc.ents:
            ordinary.update(fold(word) for word in FOLDED_WORD.findall(text[pos:ent.start_char]))
            pos = ent.end_char
            words = [fold(word) for word in FOLDED_WORD.findall(ent.text)]
            for word in words:
                sources[word].add(source)
            if len(words) > 1 and is_part_label(ent.label_):
                candidates.update(word for word in words if len(word) >= MIN_PART_CHARS)
        ordinary.update(fold(word) for word in FOLDED_WORD.findall(text[pos:]))
    return {word for word in candidates if len(sources[word]) <= max_gold_docs and word not in ordinary}


class RealPhi:
    """The identifying PHI strings of real splits, their gold labels, and where they occur in a text."""

    def __init__(self, gold_splits: Sequence[Sequence[Doc]], max_gold_docs: int = 1,
                 is_part_label: Callable[[str], bool] = no_part_labels):
        """Index the identifying strings of each split (identifying within its own split).

        gold_splits (Sequence[Sequence[Doc]]): the real documents, one sequence per split.
        max_gold_docs (int): a string is identifying when annotated in at most this many
            documents of its split.
        is_part_label (Callable[[str], bool]): labels whose multi-word strings have words that
            identify on their own (names, institutions): counted as `partial` forms.
        """
        label_counts: Dict[str, Counter] = defaultdict(Counter)
        self._parts: Set[str] = set()
        common: Set[str] = set()  # folded forms of strings that are not identifying ("MADRID" vs "Madrid")
        for docs in gold_splits:
            index = PhiIndex(docs, max_gold_docs=max_gold_docs)
            for label, ids in index.by_label.items():
                for i in ids & index.identifying:
                    label_counts[index.strings[i]][label] += 1
            common.update(fold(index.strings[i]) for i in set(range(len(index.strings))) - index.identifying)
            self._parts |= distinctive_words(docs, max_gold_docs, is_part_label)
        self.label_of = {string: counts.most_common(1)[0][0] for string, counts in label_counts.items()}
        self._index = PhiIndex.of_strings(self.label_of)
        self._folded: Set[str] = {fold(string) for string in self.label_of} - common
        self._parts -= self._folded | common

    @property
    def strings(self) -> frozenset:
        """The identifying strings (private: for avoiding them, never for output)."""
        return frozenset(self.label_of)

    def __len__(self) -> int:
        return len(self.label_of)

    def find(self, text: str) -> List[Tuple[int, int, str]]:
        """Verbatim occurrences: (start, end, gold label), sorted, not overlapping."""
        return [(start, end, self.label_of[self._index.strings[i]]) for start, end, i in self._index.spans(text)]

    def near_verbatim(self, text: str) -> Counter:
        """`verbatim` occurrences, and those of forms that are not: `near` (a string in another
        case, accent or spacing) and `partial` (a distinctive word of a multi-word name or
        institution, alone), whole words, each counted once where forms overlap."""
        spaced = normalise(text, False)
        exact = {(start, end) for start, end, _ in self._index.spans(spaced)}
        searched = folded_text(spaced)
        counts: Counter = Counter(verbatim=len(exact), near=0, partial=0)
        covered: List[Tuple[int, int]] = list(exact)
        for key in self._folded:
            if key in searched.folded:
                for span in searched.find(key):
                    if not any(a <= span[0] < b or span[0] <= a < span[1] for a, b in covered):
                        counts["near"] += 1
                        covered.append(span)
        if self._parts:
            for match in FOLDED_WORD.finditer(spaced):
                if fold(match.group()) in self._parts and not any(a <= match.start() < b for a, b in covered):
                    counts["partial"] += 1
        return counts
