"""The de-identification component: turns `doc.ents` into a de-identified text.

Registered factory ``deid_transform``; add it after ``ner`` (and after ``deid_rules``)::

    nlp.add_pipe("deid_rules", after="ner")
    nlp.add_pipe("deid_transform", last=True, config={"mode": "pseudonymize", "seed": 0})
    doc = nlp(text)
    doc._.deidentified   # str
    doc._.deid_spans     # [{"start", "end", "label", "kind", "source", "out_start", "out_end", "replacement"}]

Modes: ``redact`` ("[LABEL]"), ``mask`` (each non-space character becomes ``mask_char``, so
offsets do not move) and ``pseudonymize``: a realistic surrogate of the same kind, drawn
from Faker's locale data (es_ES, sv_SE, ...). Surrogates are consistent within a document
(the same string, and the same name part whatever its case, gets the same surrogate), dates
move by one offset per document (intervals are kept), ages by one small delta, and IDs come
out in a valid format (DNI/NIE check letter, personnummer Luhn digit).

Keys: without one, the draws of a document are seeded from ``seed`` and a hash of its text,
so anyone holding the output and a candidate patient can recompute the surrogates and test
the guess (``keyed`` is False; ``clinical_deid.deidentify`` refuses). With ``set_key(key)`` (see
``load_key``: a key file or ``$DEID_SURROGATE_KEY``) every draw comes from
HMAC-SHA256(key, kind + folded original): the same real value gets the same surrogate in
every note of the run (a name word by word, so "García" alone and in "Ana García" agree),
and the date shift and age delta are drawn per ``doc._.deid_group`` (a patient id; per note
when None). The key lives in memory only (not in the config, to_disk, meta or repr). Either
way the output is the same with any ``n_process`` and any batch size.

Other mentions of a found string (4+ characters), and the distinctive words of found names
and institutions, are replaced too, in any case or accent form (``fold``: Unicode case
folding, marks dropped; "GARCIA", "garcía", NFD "García"), by characters. A value a surrogate
cannot handle (a date that leaves the calendar, an age 0, a surrogate that would hold an
original of the note) is redacted instead, never failing the note: its span record says
``"fallback": "redact"`` and ``"fallback_reason"`` (the exception's type).

The pieces, one job each: ``labels`` (label -> kind), ``operators`` (one class per kind),
``surrogates`` (a document's shared draw state), ``dates``, ``folding``, ``mentions``
(propagation), ``coverage``, ``keys`` and the language data in ``lang/``. This module is the
component: it decides each span's treatment, assembles the output and redacts coincidences.
"""
from __future__ import annotations

import bisect
import random
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span

from .coverage import uncovered
from .folding import WORD, FoldedStrings, folded_text, holds_word
from .keys import Secret, check_key, document_seed
from .label_map import check_kinds, guess_kind
from .labels import KINDS, LOCALES, MODES, PRESETS
from .locale_data import locale_data
from .mentions import Mention, with_age_units, with_other_mentions
from .surrogates import Surrogates
from .vocabulary import NAME_PARTICLES, RELATIONS

if not Doc.has_extension("deidentified"):
    Doc.set_extension("deidentified", default=None)
if not Doc.has_extension("deid_spans"):
    Doc.set_extension("deid_spans", default=None)
if not Doc.has_extension("deid_group"):
    # Who the note is about (a patient id), set by the caller: with a key, the date shift and
    # the age delta are drawn per group, so a patient's notes keep their intervals.
    Doc.set_extension("deid_group", default=None)


class SurrogateLeak(Exception):
    """A surrogate that holds its original: the span is redacted instead."""


class DeidTransform:
    """Writes `doc._.deidentified` and `doc._.deid_spans` from `doc.ents`."""

    def __init__(self, name: str, lang: str, mode: str = "pseudonymize", mask_char: str = "*",
                 preset: str = "auto", label_map: Optional[Dict[str, str]] = None,
                 default_kind: str = "redact", seed: int = 0, locale: Optional[str] = None,
                 redact_template: str = "[{label}]", max_date_shift: int = 365,
                 max_age_shift: int = 2, rules_key: str = "deid_rules", max_kept_tokens: int = 3,
                 propagate: bool = True, no_surrogate: str = "redact",
                 avoid_strings: AbstractSet[str] = frozenset(), guess_kinds: bool = True) -> None:
        if preset not in PRESETS:
            raise ValueError(f"deid_transform: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        self.name = name
        self.mode = mode
        self.mask_char = mask_char
        self.preset = preset
        # label -> kind: the preset's, the user's label_map over it (set_label_map), then a
        # guess from the label's name (guess_kinds), then default_kind (see label_map.py).
        self.preset_map = PRESETS[preset]
        self.user_map: Dict[str, str] = {}
        self.label_map = dict(self.preset_map)
        self.guess_kinds = guess_kinds
        self._guessed: Dict[str, Optional[str]] = {}
        self.default_kind = default_kind
        self.seed = seed
        self.locale = locale or LOCALES.get(lang, "en_US")
        self.redact_template = redact_template
        self.max_date_shift = max_date_shift
        self.max_age_shift = max_age_shift
        self.rules_key = rules_key
        # A span of a kept label longer than this is redacted: a wrong, overlong prediction
        # (a kept label stretched over a paragraph) must not carry the PHI inside it through.
        self.max_kept_tokens = max_kept_tokens
        # Other mentions of a string the model found ("Madrid" tagged once, missed twice), and
        # of a distinctive word of a found name or institution ("García" of "Ana García"), are
        # replaced too, with the same surrogate.
        self.propagate = propagate
        # What pseudonymize does with values that have no surrogate (sex, kinship words, free
        # text): "redact", or "keep" (a training corpus, where a placeholder teaches nothing).
        if no_surrogate not in ("redact", "keep"):
            raise ValueError(f"deid_transform: no_surrogate must be 'redact' or 'keep', not {no_surrogate!r}")
        self.no_surrogate = no_surrogate
        # No surrogate may hold one of these (see Surrogates); not part of the factory's
        # config: pseudonymize_corpus passes the real corpus's PHI strings, in memory only.
        self.avoid_strings = FoldedStrings.of(avoid_strings)
        # The surrogate key (see set_key): in memory only, never in the config, meta or output.
        self._key: Optional[Secret] = None
        if default_kind not in KINDS:
            raise ValueError(f"deid_transform: unknown default_kind {default_kind!r}; choose from {list(KINDS)}")
        self.set_label_map(label_map or {})
        if len(mask_char) != 1:
            raise ValueError("deid_transform: mask_char must be one character")

    def set_key(self, key: Optional[bytes]) -> None:
        """Draw surrogates with this secret key (None: without, from the text and `seed`,
        which anyone holding the output can recompute for a candidate original).

        With a key, every draw comes from HMAC-SHA256(key, kind + folded original), so the
        same real value gets the same surrogate in every note of a run, and the date shift
        and age delta are drawn per `doc._.deid_group` (per note when it is None). The key
        stays in memory: not in the config, to_disk, meta, repr or any message; it is
        pickled with the component (spaCy's n_process > 1 under the spawn start method).

        key (Optional[bytes]): At least 16 random bytes (ValueError otherwise), or None.
        """
        if key is None:
            self._key = None
            return
        if not isinstance(key, (bytes, bytearray)):
            raise ValueError("deid_transform: the surrogate key must be bytes")
        self._key = Secret(check_key(bytes(key), "deid_transform"))

    @property
    def keyed(self) -> bool:
        """Whether surrogates are drawn with a secret key (see set_key)."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"<DeidTransform {self.name!r} mode={self._mode} keyed={self.keyed}>"

    @property
    def mode(self) -> str:
        """RETURNS (str): redact | mask | pseudonymize (settable)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"deid_transform: unknown mode {value!r}; choose one of {MODES}")
        self._mode = value

    def set_label_map(self, label_map: Dict[str, str]) -> None:
        """Merge label -> kind entries over the preset and the earlier entries.

        label_map (Dict[str, str]): label -> kind (ValueError naming each label whose kind is
            not one of KINDS).
        """
        check_kinds(label_map, "deid_transform: label_map")
        self.user_map.update(label_map)
        self.label_map = {**self.preset_map, **self.user_map}
        self._guessed.clear()

    def kind(self, label: str) -> str:
        """label (str): An entity label.
        RETURNS (str): Its surrogate kind: the label map's, else the preset's, else a guess from
            its name (guess_kinds), else default_kind.
        """
        kind = self.label_map.get(label)
        if kind is None:
            if label not in self._guessed:
                self._guessed[label] = guess_kind(label) if self.guess_kinds else None
            kind = self._guessed[label] or self.default_kind
        return kind

    def kind_source(self, label: str) -> Tuple[str, str]:
        """label (str): An entity label.
        RETURNS (Tuple[str, str]): Its kind and where the kind comes from: map, preset,
            guessed or default.
        """
        if label in self.user_map:
            return self.user_map[label], "map"
        if label in self.preset_map:
            return self.preset_map[label], "preset"
        guess = guess_kind(label) if self.guess_kinds else None
        return (guess, "guessed") if guess else (self.default_kind, "default")

    def kind_of(self, ent: Union[Span, Mention]) -> str:
        """An entity's kind: its label's, with "relative" settled on its text (kinship words
        only: "redact"; else a name).

        ent (Union[Span, Mention]): An entity or mention.
        RETURNS (str): Its surrogate kind.
        """
        kind = self.kind(ent.label_)
        if kind == "relative":
            words = [w.casefold() for w in WORD.findall(ent.text)]
            kind = "redact" if all(w in RELATIONS or w in NAME_PARTICLES for w in words) else "name"
        return kind

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text
        found_ents = with_age_units(doc, lambda label: self.kind(label) == "age")
        if self.propagate:
            ents = with_other_mentions(doc, found_ents, self.kind_of, locale_data(self.locale), text)
        else:
            ents = [Mention.of(e) for e in found_ents]
        found = {(e.start_char, e.end_char) for e in found_ents}
        from_rules = set()
        if self.rules_key in doc.spans:
            from_rules = {(s.start_char, s.end_char) for s in doc.spans[self.rules_key]}
        surrogates: Optional[Surrogates] = None
        spans: List[Dict] = []
        for ent in ents:
            label, original = ent.label_, ent.text
            kind = self.kind_of(ent)
            if kind in ("keep", "mask"):
                treatment = kind
            elif (kind, self._mode) == ("redact", "pseudonymize"):
                treatment = self.no_surrogate
            else:
                treatment = self._mode
            if ent.n_tokens > self.max_kept_tokens and treatment == "keep":
                treatment = "redact"
            record = {
                "start": ent.start_char, "end": ent.end_char, "label": label, "kind": kind,
                "source": "rules" if (ent.start_char, ent.end_char) in from_rules
                else "ner" if (ent.start_char, ent.end_char) in found else "propagated",
            }
            if treatment == "pseudonymize":
                if surrogates is None:
                    surrogates = self._surrogates(doc, text, ents)
                try:
                    new = surrogates.get(kind, original)
                    if self._holds_original(kind, original, new, surrogates):
                        raise SurrogateLeak()
                except Exception as err:  # never fail the note: that value is redacted
                    self._fall_back(record, type(err).__name__)
                    new = record["replacement"]
            elif treatment == "redact":
                new = self.redact_template.format(label=label, kind=kind)
            elif treatment == "mask":
                new = "".join(c if c.isspace() else self.mask_char for c in original)
            else:
                new = original
            record["replacement"] = new
            spans.append(record)
        out = self._assemble(text, spans)
        if spans:
            out = self._redact_coincidences(text, spans, ents, out)
        doc._.deidentified = out
        doc._.deid_spans = spans
        return doc

    def _fall_back(self, record: Dict, reason: str) -> None:
        """Redact the span of `record` instead; the reason is an exception's type, never its
        message (which may hold the text)."""
        record.update(replacement=self.redact_template.format(label=record["label"], kind=record["kind"]),
                      fallback="redact", fallback_reason=reason)

    @staticmethod
    def _assemble(text: str, spans: Sequence[Dict]) -> str:
        """The output text; sets each record's out_start and out_end."""
        pieces: List[str] = []
        pos = out_len = 0
        for record in spans:
            pieces.append(text[pos : record["start"]])
            out_len += record["start"] - pos
            pieces.append(record["replacement"])
            record["out_start"], record["out_end"] = out_len, out_len + len(record["replacement"])
            out_len += len(record["replacement"])
            pos = record["end"]
        pieces.append(text[pos:])
        return "".join(pieces)

    def _redact_coincidences(self, text: str, spans: List[Dict], ents: Sequence[Mention], out: str) -> str:
        """A replacement may complete one of the note's found strings with the text beside it:
        a drawn date "01/10/2018" after an unchanged "/01/0001" gives "/01/000101" again, and
        a placeholder after a mention glued to the replaced text ("ǅA:0:") makes it a word.
        The surrogate is redacted, or the unchanged rest of the mention is, until no found
        string of 4+ characters is in the output but where it is kept by design (a span left
        as it was, a placeholder, a mask). `spans` is changed in place, kept sorted."""
        strings = {e.text: e.label_ for e in ents
                   if len(e.text) >= 4 and any(c.isalnum() for c in e.text) and self.kind_of(e) != "keep"}
        for _ in range(3):
            folded = folded_text(out)
            bad, pieces = set(), []
            out_starts = [r["out_start"] for r in spans]  # both sorted: the records are in order
            out_ends = [r["out_end"] for r in spans]
            for string, label in strings.items():
                for start, end in folded.find(string):
                    touched = range(bisect.bisect_right(out_ends, start), bisect.bisect_left(out_starts, end))
                    drawn = [i for i in touched if self._is_surrogate(text, spans[i])]
                    bad.update(drawn)  # inside or beside a drawn surrogate: that surrogate made it
                    if not drawn and self.propagate:  # other mentions are replaced: this one too
                        outside = uncovered(start, end, [(spans[i]["out_start"], spans[i]["out_end"]) for i in touched])
                        pieces.extend((a, b, label) for a, b in outside if any(c.isalnum() for c in out[a:b]))
            if not bad and not pieces:
                break
            for i in bad:
                self._fall_back(spans[i], "SurrogateLeak")
            for out_start, out_end, label in pieces:
                start = self._input_offset(out_start, spans, out_starts)
                end = start + out_end - out_start
                if any(r["start"] < end and start < r["end"] for r in spans):
                    continue
                record = {"start": start, "end": end, "label": label, "kind": self.kind(label), "source": "propagated"}
                self._fall_back(record, "Coincidence")
                spans.append(record)
            spans.sort(key=lambda r: r["start"])
            out = self._assemble(text, spans)
        return out

    @staticmethod
    def _input_offset(pos: int, spans: Sequence[Dict], out_starts: Sequence[int]) -> int:
        """Input offset of output offset `pos`, outside every replacement (`out_starts`: the
        records' output starts, sorted)."""
        i = bisect.bisect_right(out_starts, pos) - 1
        return pos if i < 0 else pos + spans[i]["end"] - spans[i]["out_end"]

    def _is_surrogate(self, text: str, record: Dict) -> bool:
        """Whether a record's replacement was drawn (not kept, redacted or masked)."""
        return (self._mode == "pseudonymize" and "fallback" not in record
                and record["kind"] not in ("keep", "mask", "redact")
                and record["replacement"] != text[record["start"]:record["end"]])

    def _surrogates(self, doc: Doc, text: str, ents: Sequence[Mention]) -> Surrogates:
        """The document's Surrogates: seeded from `seed` and the text, or keyed (see set_key)."""
        originals = [(self.kind_of(e), e.text) for e in ents]
        if self._key is None:
            rng, group = random.Random(document_seed(self.seed, text)), ""
        else:
            rng = random.Random(0)  # every keyed draw reseeds it (Surrogates.scope)
            given = doc._.deid_group
            group = f"group\x1f{given}" if given is not None else f"text\x1f{text}"
        return Surrogates(locale_data(self.locale), rng, originals, self.max_date_shift, self.max_age_shift,
                          self.avoid_strings, key=None if self._key is None else self._key.value, group=group)

    def _holds_original(self, kind: str, original: str, new: str, surrogates: Surrogates) -> bool:
        """Whether a surrogate still holds its original as a word, in any case or accent form
        ("0 meses" has no age to move, a name of particles only has nothing drawn), or another
        of the note's originals that its draws could not avoid (the "2018" of a name span
        "3 maj 2018" where "2018" is an age). Dates and ages are exempt when the config asks
        not to move them (max shift 0)."""
        if (kind == "date" and self.max_date_shift <= 0) or (kind == "age" and self.max_age_shift <= 0):
            return False
        return (any(c.isalnum() for c in original) and holds_word(new, original)) or surrogates.leaks(new)


@Language.factory(
    "deid_transform",
    assigns=["doc._.deidentified", "doc._.deid_spans"],
    requires=["doc.ents"],
    default_config={
        "mode": "pseudonymize",
        "mask_char": "*",
        "preset": "auto",
        "label_map": {},
        "default_kind": "redact",
        "seed": 0,
        "locale": None,
        "redact_template": "[{label}]",
        "max_date_shift": 365,
        "max_age_shift": 2,
        "rules_key": "deid_rules",
        "max_kept_tokens": 3,
        "propagate": True,
        "no_surrogate": "redact",
        "guess_kinds": True,
    },
)
def make_deid_transform(nlp: Language, name: str, mode: str, mask_char: str, preset: str,
                        label_map: Dict[str, str], default_kind: str, seed: int,
                        locale: Optional[str], redact_template: str, max_date_shift: int,
                        max_age_shift: int, rules_key: str, max_kept_tokens: int,
                        propagate: bool, no_surrogate: str, guess_kinds: bool) -> DeidTransform:
    """De-identify `doc.ents` (see the module docstring).

    mode: redact | mask | pseudonymize. preset: meddocan | swedish_ner | stockholm_epr | auto
    (their union); label_map: label -> kind overrides on top of the preset (kinds: KINDS);
    labels in neither get a kind guessed from their name (guess_kinds, see
    clinical_deid.label_map), else `default_kind`. locale: Faker locale, default from nlp.lang.
    """
    return DeidTransform(name, nlp.lang, mode=mode, mask_char=mask_char, preset=preset,
                         label_map=label_map, default_kind=default_kind, seed=seed, locale=locale,
                         redact_template=redact_template, max_date_shift=max_date_shift,
                         max_age_shift=max_age_shift, rules_key=rules_key,
                         max_kept_tokens=max_kept_tokens, propagate=propagate, no_surrogate=no_surrogate,
                         guess_kinds=guess_kinds)
