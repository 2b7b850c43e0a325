"""The labels deid_rules' matches get in a label set that no preset covers.

A rule that neither ``preset`` nor ``label_map`` names takes the label of the pipeline's entity
components (``ner``, an entity ruler) of its surrogate kind, guessed from the labels' names
(``clinical_deid.label_map.guess_kind``): under the German demo labels PHONE becomes
CONTACT_PHONE and POSTCODE LOCATION_ZIP, so that one kind has one label in the output, the
spans files and the scores. The rule's own name stays when the NER predicts it (DATE), when no
NER label has the kind (URL), and when several do and none is clearly best (NATIONAL_ID under
ID_PATIENT and ID_INSURANCE: a tie, reported). Of several labels of the kind, the one with a
word of the rule's own (PHONE: CONTACT_PHONE before CONTACT_FAX) is clearly best.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from wasabi import Printer

from .label_map import guess_kind, label_words

# The kind of each rule, as guess_kind names the kind of a label (national IDs: id_generic).
RULE_GUESS_KINDS = {
    "EMAIL": "email", "URL": "url", "IP": "ip", "PHONE": "phone", "FAX": "phone", "DATE": "date",
    "DNI": "id_generic", "NIE": "id_generic", "PERSONNUMMER": "id_generic", "NATIONAL_ID": "id_generic",
    "POSTCODE": "territory",
}
# Words that make a label of the kind the rule's own, when several labels have the kind.
RULE_WORDS = {
    "PHONE": {"PHONE", "TELEPHONE", "TEL", "TELEFON", "TELEFONO", "TELEFONNUMMER", "TLF", "MOBILE", "MOBIL",
              "CELL", "HANDY"},
    "FAX": {"FAX", "TELEFAX"},
    "DATE": {"DATE", "DATUM", "FECHA", "DATO"},
    "POSTCODE": {"ZIP", "ZIPCODE", "POSTCODE", "POSTAL", "POSTALCODE", "PLZ", "POSTNUMMER", "POSTNR"},
    "DNI": {"DNI", "NIE", "NIF"},
    "NIE": {"NIE", "NIF", "DNI"},
    "PERSONNUMMER": {"PERSONNUMMER", "SSN", "NATIONAL"},
    "NATIONAL_ID": {"SSN", "NATIONAL", "PERSONNUMMER", "FODSELSNUMMER", "CPR", "HETU"},
}
# How a rule got its label: by the preset or label_map, from the NER, its own name (no NER label
# of its kind), its own name because several NER labels have the kind.
SOURCES = ("preset", "label_map", "ner", "own", "tie")


def ner_labels(nlp: Language) -> List[str]:
    """The labels the pipeline's entity components predict (all, enabled or not; not deid_rules'), sorted.

    nlp (Language): The pipeline.
    RETURNS (List[str]): The labels of the components that assign doc.ents and have labels.
    """
    found = set()
    for name, pipe in nlp.components:
        if hasattr(pipe, "label_sources") or "doc.ents" not in nlp.get_pipe_meta(name).assigns:
            continue  # (deid_rules: its labels are what is being resolved)
        found.update(str(label) for label in getattr(pipe, "labels", ()))
    return sorted(found)


def ner_label_for(rule: str, labels: Iterable[str]) -> Tuple[Optional[str], List[str]]:
    """The NER label a rule's matches take, and the labels that tied.

    rule (str): A rule (RULE_GUESS_KINDS). labels (Iterable[str]): The NER's labels.
    RETURNS (Tuple[Optional[str], List[str]]): (label, []) when one label is the rule's own name,
        the only one of its kind or the only one of its kind with a word of RULE_WORDS;
        (None, []) when none has the kind; (None, the tied labels) otherwise.
    """
    labels = sorted(set(labels))
    if rule in labels:
        return rule, []
    kind = RULE_GUESS_KINDS.get(rule)
    candidates = [label for label in labels if kind and guess_kind(label) == kind]
    if len(candidates) > 1:
        words = RULE_WORDS.get(rule, set())
        own = [label for label in candidates if words & set(label_words(label))]
        candidates = own if len(own) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0], []
    return None, candidates


def resolve_rule_labels(rules: Iterable[str], labels: Iterable[str]) -> Dict[str, Tuple[str, str, List[str]]]:
    """rule -> (label, source, tied labels) of the rules that neither preset nor label_map names.

    rules (Iterable[str]): Those rules. labels (Iterable[str]): The NER's labels.
    RETURNS (Dict[str, Tuple[str, str, List[str]]]): source "ner", "own" or "tie" (see SOURCES).
    """
    labels = list(labels)
    resolved = {}
    for rule in rules:
        label, tied = ner_label_for(rule, labels)
        source = "tie" if tied else "own" if label is None else "ner"
        resolved[rule] = (label or rule, source, tied)
    return resolved


def report_rule_labels(nlp: Language, msg: Printer) -> List[Tuple[str, str, str]]:
    """Print the label of each rule deid_rules runs and where it came from; warn about ties.

    nlp (Language): A pipeline (nothing printed without an enabled deid_rules).
    msg (Printer): Where to print.
    RETURNS (List[Tuple[str, str, str]]): The rows (rule, label, source).
    """
    pipes = [pipe for name, pipe in nlp.pipeline if hasattr(pipe, "label_sources")]
    rows: List[Tuple[str, str, str]] = []
    for pipe in pipes:
        sources = pipe.label_sources()
        rows += [(rule, label, source) for rule, (label, source, _) in sources.items() if rule in pipe.rules]
        ties = [f"{rule} ({' / '.join(tied)})" for rule, (_, source, tied) in sources.items()
                if source == "tie" and rule in pipe.rules]
        if ties:
            msg.warn(f"deid_rules: several NER labels of one kind, the rule keeps its own name: {', '.join(ties)}",
                     "Choose one with the component's label_map (rule -> label)")
    if rows:
        msg.table(rows, header=("Rule", "Label", "Source"), divider=True, title="What each rule's matches are labelled")
    return rows
