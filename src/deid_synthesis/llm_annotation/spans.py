"""Turn an LLM's NER answer into entities, with misaligned spans handled as the converters do.

spacy-llm's NER.v3 parser finds each span the model names in the text and snaps it to token
edges; a span it cannot snap is dropped without a count. This parser
(`deid.AlignedSpanParser.v1`, the `parse_responses` of the task) reads the same chain-of-thought
answer format, looks each span up in order (after the previous one, as spacy-llm does), and
applies the converters' policies to a span off token edges (`corpus.docs`): `split` splits the
tokens at its edges so the span is kept exactly (default), `expand` / `contract` snap it,
`skip` drops it. It counts, per label, the spans named, found, misaligned and dropped, and the
names the text does not hold (the model made them up): `counts`, read into annotate.json.
"""
from collections import Counter
from typing import Iterable, List, Optional, Tuple

from spacy.tokens import Doc, Span
from spacy_llm.registry import registry
from spacy_llm.tasks.span.examples import SpanReason
from spacy_llm.tasks.util import find_substrings

from deid_synthesis.corpus.docs import split_at

POLICIES = ("split", "expand", "contract", "skip")


def read_answer(task, response: str) -> List[SpanReason]:
    """The lines of an answer that name an entity with one of the task's labels (others ignored)."""
    reasons = []
    for line in response.strip().split("\n"):
        try:
            reason = SpanReason.from_str(line)
        except ValueError:
            continue
        label = task.label_dict.get(task.normalizer(reason.label)) if reason.is_entity else None
        if label is not None and reason.text.strip():
            reason.label = label
            reasons.append(reason)
    return reasons


class AlignedSpanParser:
    """parse_responses for span tasks: spans found in order, misaligned ones handled by policy."""

    def __init__(self, misaligned: str = "split"):
        if misaligned not in POLICIES:
            raise ValueError(f"deid.AlignedSpanParser.v1: misaligned must be one of {POLICIES}, not {misaligned!r}")
        self.misaligned = misaligned
        self.counts: Counter = Counter()  # "<what>" and "<what>:<label>"

    def _count(self, what: str, label: str) -> None:
        self.counts[what] += 1
        self.counts[f"{what}:{label}"] += 1

    def locate(self, task, doc: Doc, reasons: List[SpanReason]) -> List[Tuple[int, int, str]]:
        """Character offsets of each named span, searched after the previous one found."""
        found, after = [], 0
        for reason in reasons:
            self._count("named", reason.label)
            offsets = find_substrings(doc.text, [reason.text], case_sensitive=task.case_sensitive_matching,
                                      single_match=True, find_after=after)
            if not offsets:  # also when it occurs only before the previous span: not re-read
                self._count("not_in_text", reason.label)
                continue
            start, end = offsets[0]
            found.append((start, end, reason.label))
            after = end
        return found

    def spans(self, task, doc: Doc, response: str) -> List[Span]:
        """The entities of one shard; the shard's tokens are split first under policy `split`."""
        found = self.locate(task, doc, read_answer(task, response))
        misfits = [(s, e, label) for s, e, label in found if doc.char_span(s, e) is None]
        for _, _, label in misfits:
            self._count("misaligned", label)
        if misfits and self.misaligned == "split":
            split_at(doc, {edge for s, e, _ in misfits for edge in (s, e)})
        mode = self.misaligned if self.misaligned in ("expand", "contract") else "strict"
        spans = []
        for start, end, label in found:
            span: Optional[Span] = doc.char_span(start, end, label=label, alignment_mode=mode)
            if span is None or len(span) == 0:
                self._count("dropped", label)
                continue
            spans.append(span)
        return spans

    def __call__(self, task, shards: Iterable[Iterable[Doc]],
                 responses: Iterable[Iterable[str]]) -> Iterable[Iterable[List[Span]]]:
        for shards_for_doc, responses_for_doc in zip(shards, responses):
            yield [self.spans(task, shard, response) for shard, response in zip(shards_for_doc, responses_for_doc)]


@registry.llm_misc("deid.AlignedSpanParser.v1")
def make_aligned_span_parser(misaligned: str = "split") -> AlignedSpanParser:
    """The NER task's response parser: policy for spans off token edges (split, expand, contract, skip)."""
    return AlignedSpanParser(misaligned)
