"""An annotator made of several NER pipelines that vote on each entity.

The synthetic model can only learn the labels its annotator gives, so the annotator is where
its ceiling is. Two CNNs trained on the same gold notes with different seeds or initialisations
disagree on a few per cent of entities, and mostly not on the same ones (docs/results.md,
"Annotators"): an entity that most of them find is far more often right than one that only one
of them finds. The annotator does not ship and its speed matters little, so it can afford to
run several pipelines.

`deid_ensemble_ner` runs each member pipeline on the document's text and keeps the entities
(exact character span and label) that at least `min_votes` members predict; by default a strict
majority, which never yields overlapping entities (each member's own entities do not overlap).
With a lower threshold, overlapping candidates are settled by votes, then length, then position.

The members are saved inside the component's folder (`nlp.to_disk`), so the ensemble is one
pipeline directory that `spacy.load`, `spacy evaluate` and the project's annotate step take as
any other; `scripts/build_ensemble.py` assembles one from trained pipelines.
"""
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch

from clinical_deid.scoring import prf, score_deid_ner
from deid_synthesis.prune_strings import prune_strings

Entity = Tuple[int, int, str]


class EnsembleError(ValueError):
    """The ensemble is configured in a way it cannot run (the message says how)."""


def majority(n_members: int) -> int:
    """The smallest number of votes that is more than half of `n_members`."""
    return n_members // 2 + 1


def vote(member_entities: Sequence[Iterable[Entity]], min_votes: int) -> List[Tuple[Entity, int]]:
    """Entities predicted by at least `min_votes` members, without overlaps, in text order.

    member_entities: per member, its (start_char, end_char, label) entities of one document.
    RETURNS: (entity, votes) pairs; an entity overlapping one with more votes (then a longer
    one, then an earlier one) is dropped.
    """
    counts = Counter(entity for entities in member_entities for entity in set(entities))
    candidates = [(entity, n) for entity, n in counts.items() if n >= min_votes]
    candidates.sort(key=lambda item: (-item[1], -(item[0][1] - item[0][0]), item[0][0], item[0][2]))
    kept: List[Tuple[Entity, int]] = []
    for (start, end, label), n in candidates:
        if all(end <= other_start or other_end <= start for (other_start, other_end, _), _ in kept):
            kept.append(((start, end, label), n))
    return sorted(kept, key=lambda item: item[0][:2])


class EnsembleNER:
    """Sets `doc.ents` to the entities a quorum of member pipelines agree on (module docstring)."""

    def __init__(self, nlp: Language, name: str, members: Sequence[str], min_votes: Optional[int]) -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.member_paths = [str(member) for member in members]
        self.min_votes_setting = min_votes
        self._members: Optional[List[Language]] = None

    # Members load when first needed: a saved ensemble loads them from its own folder
    # (from_disk), not from the paths its config was built with.
    @property
    def members(self) -> List[Language]:
        if self._members is None:
            self.use_members([self._load(path) for path in self.member_paths])
        return self._members

    def use_members(self, members: Sequence[Language]) -> None:
        """Vote over these loaded pipelines (checked: each has an 'ner', min_votes fits)."""
        self._members = list(members)
        self._check()

    @staticmethod
    def _load(path: Union[str, Path]) -> Language:
        try:
            return spacy.load(path)
        except OSError as err:
            raise EnsembleError(f"ensemble member {path}: cannot load it (not a pipeline folder or an installed "
                                f"pipeline package)") from err

    def _check(self) -> None:
        n = len(self._members or [])
        if n == 0:
            raise EnsembleError("the ensemble has no member pipelines")
        for path, member in zip(self.member_paths, self._members or []):
            if "ner" not in member.pipe_names:
                raise EnsembleError(f"ensemble member {path}: no 'ner' component ({', '.join(member.pipe_names)})")
        if not 1 <= self.min_votes <= n:
            raise EnsembleError(f"min_votes = {self.min_votes_setting}: must be between 1 and the {n} members")

    @property
    def min_votes(self) -> int:
        n = len(self._members) if self._members is not None else len(self.member_paths)
        return majority(n) if self.min_votes_setting is None else self.min_votes_setting

    @property
    def labels(self) -> Tuple[str, ...]:
        # spaCy reads labels for nlp.meta while it loads, before from_disk: loading the members
        # then would go to the config's paths.
        members = self._members or []
        return tuple(sorted({label for member in members for label in member.get_pipe("ner").labels}))

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def predict_members(self, texts: Sequence[str], batch_size: int = 32) -> List[List[List[Entity]]]:
        """Per member, per text: the member's entities as (start_char, end_char, label)."""
        return [[[(e.start_char, e.end_char, e.label_) for e in doc.ents]
                 for doc in member.pipe(texts, batch_size=batch_size)] for member in self.members]

    def pipe(self, stream: Iterable[Doc], batch_size: int = 32) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size):
            predicted = self.predict_members([doc.text for doc in batch], batch_size)
            for i, doc in enumerate(batch):
                entities = vote([per_member[i] for per_member in predicted], self.min_votes)
                spans = [self._span(doc, entity) for entity, _ in entities]
                doc.ents = filter_spans([span for span in spans if span is not None])
                yield doc

    @staticmethod
    def _span(doc: Doc, entity: Entity) -> Optional[Span]:
        start, end, label = entity
        # The members tokenize as the ensemble does (build_ensemble copies member 0's tokenizer);
        # "expand" keeps an entity whole if a member was trained with another tokenizer (and
        # filter_spans settles two entities expanded onto the same token).
        return doc.char_span(start, end, label=label, alignment_mode="expand")

    def score(self, examples, **kwargs) -> Dict[str, object]:
        return score_deid_ner(examples, **kwargs)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Each member in member<i>/, its string store pruned: the members keep the strings of every
        text they have processed, notes included (deid_synthesis.prune_strings)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.members):
            member.to_disk(path / f"member{i}")
            prune_strings(path / f"member{i}")

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "EnsembleNER":
        path = Path(path)
        folders = sorted((p for p in path.iterdir() if p.name.startswith("member")), key=lambda p: int(p.name[6:]))
        self.member_paths = [str(folder) for folder in folders]
        self.use_members([self._load(folder) for folder in folders])
        return self

    def initialize(self, get_examples: Optional[Callable] = None, *, nlp: Optional[Language] = None) -> None:
        """Load the members (they are trained already: nothing to learn here)."""
        self.members  # noqa: B018 (loads and checks)


@Language.factory("deid_ensemble_ner", assigns=["doc.ents"], default_config={"members": [], "min_votes": None})
def make_ensemble_ner(nlp: Language, name: str, members: List[str], min_votes: Optional[int]) -> EnsembleNER:
    """The `deid_ensemble_ner` factory (see the module docstring).

    members: paths or package names of trained pipelines with an 'ner' component.
    min_votes: votes an entity needs (null: a strict majority of the members).
    """
    return EnsembleNER(nlp, name, members, min_votes)


def strict_counts(gold: Sequence[set], found: Sequence[set]) -> Dict[str, float]:
    """Strict entity P/R/F over documents: exact (start_char, end_char, label) matches, as ents_f."""
    tp = sum(len(f & g) for g, f in zip(gold, found))
    return prf(tp, sum(len(f) for f in found) - tp, sum(len(g) for g in gold) - tp)


def scores_by_min_votes(nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 32) -> Dict[str, object]:
    """Strict entity P/R/F of each member and of each possible `min_votes` on `gold_docs`.

    The members run once; each threshold is a different vote over the same predictions. Choose
    on the dev split, report on the test split.
    RETURNS: {"members": [prf per member], "votes": {min_votes: prf}}.
    """
    component = nlp.get_pipe("deid_ensemble_ner")
    predicted = component.predict_members([doc.text for doc in gold_docs], batch_size)
    gold = [{(e.start_char, e.end_char, e.label_) for e in doc.ents} for doc in gold_docs]
    members = [strict_counts(gold, [set(entities) for entities in per_member]) for per_member in predicted]
    votes = {}
    for min_votes in range(1, len(predicted) + 1):
        found = [{entity for entity, _ in vote([per_member[i] for per_member in predicted], min_votes)}
                 for i in range(len(gold))]
        votes[min_votes] = strict_counts(gold, found)
    return {"members": members, "votes": votes}


def best_min_votes(scores: Dict[int, Dict[str, float]]) -> int:
    """The threshold of the highest F1; of equals, the higher (fewer, surer entities)."""
    return max(scores, key=lambda k: (round(scores[k]["f"], 6), k))


def build_ensemble(members: Sequence[Union[str, Path]], min_votes: Optional[int] = None,
                   loaded: Optional[Sequence[Language]] = None) -> Language:
    """A pipeline with member 0's tokenizer settings and a `deid_ensemble_ner` over `members`.

    loaded: the members already loaded (in the order of `members`), not loaded again.
    """
    if not members:
        raise EnsembleError("the ensemble has no member pipelines")
    loaded = list(loaded) if loaded is not None else [EnsembleNER._load(member) for member in members]
    # Member 0's tokenizer settings, not its vocabulary: the ensemble's own strings stay empty.
    nlp = spacy.blank(loaded[0].lang, config={"nlp": {"tokenizer": loaded[0].config["nlp"]["tokenizer"]}})
    component = nlp.add_pipe("deid_ensemble_ner", config={"members": [str(m) for m in members], "min_votes": min_votes})
    component.use_members(loaded)
    return nlp
