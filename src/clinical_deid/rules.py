"""Rules for structured PHI, merged with the NER predictions.

Registered factory ``deid_rules``; add it after ``ner`` and before ``deid_transform``::

    nlp.add_pipe("deid_rules", after="ner", config={"policy": "longest"})

It finds e-mail addresses, URLs, IP addresses, phone and fax numbers (``phone_finder``:
``regex``, Spanish and Swedish formats, or ``phonenumbers``, Google's libphonenumber data for
the pipeline's country and any number with a country prefix; ``auto``, the default: regex for
es and sv, phonenumbers for any other language), Spanish DNI and NIE (check letter
validated), Swedish personnummer (date and Luhn digit validated), other countries' national
IDs, numeric dates and dates with a month name of the pipeline's language and a year
(``written_dates``) and, when asked, postcodes. The matches are put on
``doc.spans["deid_rules"]`` and merged into ``doc.ents`` without overlaps:

* ``policy = "ner"``: the model's entities stay; a match that overlaps one is dropped.
* ``policy = "longest"`` (default): the longer span wins (in tokens; the model's on a tie),
  so a partial or mislabelled model span ("ana@example" tagged PROFESION) gives way to the
  whole e-mail address: covering more is the safe side for de-identification.
* ``policy = "rules"``: a match replaces the entities it overlaps.

NATIONAL_ID finds the personal ID numbers of the pipeline's country that python-stdnum
validates (Norwegian fødselsnummer, Danish CPR, Finnish HETU, ...: see
``clinical_deid.national_ids``).

Rule names (EMAIL, URL, IP, PHONE, FAX, DNI, NIE, PERSONNUMMER, NATIONAL_ID, DATE, POSTCODE) become
labels of the pipeline's label set through ``preset`` (``auto``: from ``nlp.lang``, es →
meddocan, sv → stockholm_epr) and ``label_map`` (rule → label; an empty label switches the
rule off). A rule that neither names takes the label of the pipeline's NER of the same
surrogate kind (PHONE → CONTACT_PHONE; see ``clinical_deid.rule_labels``), resolved on first use
(or ``initialize``) and saved with the pipeline (``rule_labels.json``); without one (or with
several, a tie) it keeps its own name as the label; ``deid_transform`` knows those names.

Check letters and digits come from python-stdnum (``stdnum.es.dni``, ``stdnum.es.nie``,
``stdnum.luhn``); the formats accepted (separators, samordningsnummer) are this module's.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import ensure_path, filter_spans
from stdnum import luhn
from stdnum.es import dni, nie

from .dates import NUMERIC_DATE, find_written_dates, is_numeric_date
from .labels import LOCALES
from .national_ids import find_national_ids
from .phones import find_phones
from .rule_labels import ner_labels, resolve_rule_labels

# In order of precedence when two matches of the same length overlap.
RULES = ("EMAIL", "URL", "IP", "PERSONNUMMER", "DNI", "NIE", "NATIONAL_ID", "DATE", "PHONE", "FAX", "POSTCODE")
DEFAULT_RULES = ["EMAIL", "URL", "IP", "PERSONNUMMER", "DNI", "NIE", "NATIONAL_ID", "DATE", "PHONE", "FAX"]
POLICIES = ("ner", "longest", "rules")
PRESETS: Dict[str, Dict[str, str]] = {
    "meddocan": {
        "EMAIL": "CORREO_ELECTRONICO",
        "URL": "URL_WEB",
        "IP": "DIREC_PROT_INTERNET",
        "PHONE": "NUMERO_TELEFONO",
        "FAX": "NUMERO_FAX",
        "DNI": "ID_SUJETO_ASISTENCIA",
        "NIE": "ID_SUJETO_ASISTENCIA",
        "PERSONNUMMER": "ID_SUJETO_ASISTENCIA",
        "NATIONAL_ID": "ID_SUJETO_ASISTENCIA",
        "DATE": "FECHAS",
        "POSTCODE": "TERRITORIO",
    },
    "stockholm_epr": {"PHONE": "Phone_Number", "FAX": "Phone_Number", "DATE": "Full_Date", "POSTCODE": "Location"},
    "swedish_ner": {"POSTCODE": "LOC"},
    "none": {},
}
LANG_PRESETS = {"es": "meddocan", "sv": "stockholm_epr"}
# How phone numbers are found: this module's patterns (Spanish and Swedish formats), or
# phonenumbers' PhoneNumberMatcher (valid numbers of the region, or of any country with a
# prefix); "auto": the patterns for the languages they were written for, phonenumbers for
# the others. On MEDDOCAN test both give the same strict F1 (0.9607 with all rules, 0.9600
# with the phone rule alone; the matcher finds 32 phone and 7 fax matches against 30 and 6),
# so Spanish and Swedish keep the patterns their pipelines were measured with.
PHONE_FINDERS = ("auto", "regex", "phonenumbers")
REGEX_PHONE_LANGS = ("es", "sv")
DEFAULT_PHONE_FINDER = "auto"
# Whether DATE also finds dates written with a month name and a year (dates.find_written_dates).
# On MEDDOCAN test: strict F1 of all rules 0.9607 -> 0.9609, FECHAS 0.9878 -> 0.9894.
DEFAULT_WRITTEN_DATES = True


def region_of(lang: str) -> Optional[str]:
    """The country of a pipeline language, as phonenumbers and python-stdnum name it.

    lang (str): A pipeline language ("de"). RETURNS (Optional[str]): "DE"; None if unknown.
    """
    locale = LOCALES.get(lang)
    return locale.split("_")[-1].upper() if locale else None

# --------------------------------------------------------------------------
# Check digits (python-stdnum computes them; the formats the rules accept are checked here)
# --------------------------------------------------------------------------


def is_valid_dni(text: str) -> bool:
    """"12345678Z", "12.345.678-Z", "X1234567L" (NIE) with the right check letter.

    text (str): A candidate DNI or NIE.
    RETURNS (bool): Whether its format and check letter are right.
    """
    compact = re.sub(r"[\s.-]", "", text).upper()
    m = re.fullmatch(r"([XYZ]\d{7}|\d{8})([A-Z])", compact)
    if not m:
        return False
    number = m.group(1)
    check_letter = nie.calc_check_digit(number) if number[0] in "XYZ" else dni.calc_check_digit(number)
    return check_letter == m.group(2)


def is_valid_personnummer(text: str) -> bool:
    """(CC)YYMMDD[-+]NNNC with a real date (day + 60: samordningsnummer) and the Luhn digit.

    text (str): A candidate personnummer.
    RETURNS (bool): Whether its date and Luhn digit are right.
    """
    m = re.fullmatch(r"(\d{2})?(\d{2})(\d{2})(\d{2})[-+ ]?(\d{3})(\d)", text.strip())
    if not m:
        return False
    century, yy, mm, dd, serial, check = m.groups()
    day = int(dd) - 60 if int(dd) > 60 else int(dd)
    try:
        date(int(century or "20") * 100 + int(yy) if century else 2000, int(mm), day)
    except ValueError:
        return False
    # Any Unicode digit matches \d; stdnum's Luhn reads ASCII digits only.
    digits = "".join(str(int(c)) for c in yy + mm + dd + serial + check)
    return luhn.is_valid(digits)


# --------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'()\[\]{}]+")
# Without look-arounds the scan is several times faster; the edges are checked in _ip4s.
_IP4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IP6 = re.compile(r"(?i)(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])")
_PNR = re.compile(r"(?<![\w-])(?:(?:19|20)\d{2}|\d{2})\d{4}[-+]?\d{4}(?![\w-])")
_DNI = re.compile(r"(?<![\w.])\d{1,2}\.?\d{3}\.?\d{3}[ -]?[A-Za-z](?!\w)")
_NIE = re.compile(r"(?<!\w)[XYZxyz][ -]?\d{7}[ -]?[A-Za-z](?!\w)")
_POSTCODE = re.compile(
    r"(?i:\bC\.\s?P\.?|\bCP\b|código postal)[:\s]*(?P<es>(?:0[1-9]|[1-4]\d|5[0-2])\d{3})\b"
    r"|(?<![\d-])(?P<es2>(?:0[1-9]|[1-4]\d|5[0-2])\d{3})(?= [A-ZÁÉÍÓÚÑ][a-záéíóúñ]+)"
    r"|(?<![\d-])(?:S-)?(?P<sv>[1-9]\d{2} ?\d{2})(?= [A-ZÅÄÖ][a-zåäö]+)"
)


def _ip4s(text: str) -> Iterator[Tuple[int, int]]:
    for m in _IP4.finditer(text):
        s, e = m.span()
        before, after = text[s - 1 : s], text[e : e + 2]
        if before.isdigit() or before == "." or after[:1].isdigit() or (after[:1] == "." and after[1:].isdigit()):
            continue
        if all(int(part) <= 255 and (part == "0" or not part.startswith("0")) for part in m.group().split(".")):
            yield s, e


def find_structured_phi(text: str, rules: Sequence[str] = DEFAULT_RULES, validate: bool = True,
                        phone_finder: str = "regex",
                        region: Optional[str] = None, lang: Optional[str] = None) -> List[Tuple[int, int, str]]:
    """(start, end, rule) of the matches in `text`, sorted and without overlaps.

    Overlaps between rules go to the longer match; on a tie to the rule listed first in RULES
    (a personnummer or a DNI before a phone number).

    text (str): A note. rules (Sequence[str]): Which of RULES to run.
    validate (bool): Check DNI/NIE letters and personnummer dates and digits.
    phone_finder (str): regex | phonenumbers (see PHONE_FINDERS; "auto" is settled by DeidRules).
    region (Optional[str]): The pipeline's country ("NO"): whose phone numbers need no prefix
        (phonenumbers), whose national IDs NATIONAL_ID finds (python-stdnum).
    lang (Optional[str]): With a language, DATE also finds dates with a month name of that
        language (or of es, sv, en) and a year (see dates.find_written_dates).
    RETURNS (List[Tuple[int, int, str]]): (start, end, rule) of each match.
    """
    found: List[Tuple[int, int, str]] = []
    enabled = set(rules)
    if "EMAIL" in enabled and "@" in text:
        found += [(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(text)]
    if "URL" in enabled and ("http" in text or "www" in text or "WWW" in text):
        for m in _URL.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1] in ".,;:!?":
                end -= 1
            found.append((m.start(), end, "URL"))
    if "IP" in enabled:
        found += [(s, e, "IP") for s, e in _ip4s(text)]
        if text.count(":") >= 7:
            found += [(m.start(), m.end(), "IP") for m in _IP6.finditer(text)]
    if "PERSONNUMMER" in enabled:
        found += [(m.start(), m.end(), "PERSONNUMMER") for m in _PNR.finditer(text)
                  if not validate or is_valid_personnummer(m.group())]
    if "DNI" in enabled:
        found += [(m.start(), m.end(), "DNI") for m in _DNI.finditer(text)
                  if (len(re.sub(r"\D", "", m.group())) == 8) and (not validate or is_valid_dni(m.group()))]
    if "NIE" in enabled:
        found += [(m.start(), m.end(), "NIE") for m in _NIE.finditer(text) if not validate or is_valid_dni(m.group())]
    if "NATIONAL_ID" in enabled and region:
        found += [(s, e, "NATIONAL_ID") for s, e in find_national_ids(text, region)]
    if "PHONE" in enabled or "FAX" in enabled:
        for s, e in find_phones(text, phone_finder, region):
            is_fax = "fax" in text[max(0, s - 15) : s].lower()
            rule = "FAX" if is_fax and "FAX" in enabled else "PHONE"
            if rule in enabled:
                found.append((s, e, rule))
    if "DATE" in enabled:
        found += [(m.start(), m.end(), "DATE") for m in NUMERIC_DATE.finditer(text) if is_numeric_date(m.group())]
        if lang:
            found += [(s, e, "DATE") for s, e in find_written_dates(text, lang)]
    if "POSTCODE" in enabled:
        for m in _POSTCODE.finditer(text):
            group = next(g for g in ("es", "es2", "sv") if m.group(g))
            found.append((m.start(group), m.end(group), "POSTCODE"))
    return _without_overlaps(found, len(text))


def _without_overlaps(found: List[Tuple[int, int, str]], length: int) -> List[Tuple[int, int, str]]:
    """The longer of two overlapping matches; on a tie the rule listed first in RULES."""
    order = {rule: i for i, rule in enumerate(RULES)}
    found.sort(key=lambda f: (-(f[1] - f[0]), order[f[2]], f[0]))
    kept: List[Tuple[int, int, str]] = []
    # Characters already taken, one byte each: checking a match against every kept one
    # made a text dense with matches quadratic (20,000 dates: 14.7 s, now 0.3 s).
    taken = bytearray(length)
    for start, end, rule in found:
        if taken.find(1, start, end) < 0:
            kept.append((start, end, rule))
            taken[start:end] = b"\x01" * (end - start)
    return sorted(kept)


# --------------------------------------------------------------------------
# The component
# --------------------------------------------------------------------------


def merge_spans(ner: Sequence[Span], rules: Sequence[Span], policy: str) -> List[Span]:
    """The entities of a document from the model's and the rules' spans, without overlaps.

    ner (Sequence[Span]): The model's entities. rules (Sequence[Span]): The rules' matches.
    policy (str): ner | longest | rules (see the module docstring).
    RETURNS (List[Span]): The merged entities, sorted.
    """
    if policy == "longest":
        # filter_spans keeps the longest span; on a tie the first listed (the model's).
        return filter_spans(list(ner) + list(rules))
    first, second = (ner, rules) if policy == "ner" else (rules, ner)
    taken = set()
    for span in first:
        taken.update(range(span.start, span.end))
    merged = list(first) + [s for s in second if not taken.intersection(range(s.start, s.end))]
    return sorted(merged, key=lambda s: s.start)


class DeidRules:
    """Adds regex matches for structured PHI to `doc.ents` (see the module docstring)."""

    def __init__(self, name: str, lang: str, rules: Sequence[str] = DEFAULT_RULES, preset: str = "auto",
                 label_map: Optional[Dict[str, str]] = None, policy: str = "longest",
                 validate_checksums: bool = True, alignment_mode: str = "expand",
                 spans_key: str = "deid_rules", phone_finder: Optional[str] = None,
                 region: str = "auto", written_dates: Optional[bool] = None,
                 nlp: Optional[Language] = None) -> None:
        unknown = set(rules) - set(RULES)
        if unknown:
            raise ValueError(f"deid_rules: unknown rule(s) {sorted(unknown)}; choose from {list(RULES)}")
        if policy not in POLICIES:
            raise ValueError(f"deid_rules: unknown policy {policy!r}; choose one of {POLICIES}")
        phone_finder = phone_finder or DEFAULT_PHONE_FINDER
        if phone_finder not in PHONE_FINDERS:
            raise ValueError(f"deid_rules: unknown phone_finder {phone_finder!r}; choose one of {PHONE_FINDERS}")
        if phone_finder == "auto":
            phone_finder = "regex" if lang in REGEX_PHONE_LANGS else "phonenumbers"
        if preset == "auto":
            preset = LANG_PRESETS.get(lang, "none")
        if preset not in PRESETS:
            raise ValueError(f"deid_rules: unknown preset {preset!r}; choose one of {sorted(PRESETS) + ['auto']}")
        self.name = name
        self.preset = preset
        # How each rule got its label: preset, label_map, or (the others) the NER's labels.
        self._given = {rule: (label, "preset") for rule, label in PRESETS[preset].items()}
        self._given.update({rule: (label, "label_map") for rule, label in (label_map or {}).items()})
        self._labels = {rule: self._given.get(rule, (rule, ""))[0] for rule in RULES}
        # rule -> (label, source, tied labels) of the other rules; None: not resolved yet.
        self._resolved: Optional[Dict[str, Tuple[str, str, List[str]]]] = None
        self._nlp = nlp
        # A rule mapped to an empty label is switched off.
        self.rules = [r for r in rules if self._labels.get(r)]
        self.policy = policy
        self.validate_checksums = validate_checksums
        self.alignment_mode = alignment_mode
        self.spans_key = spans_key
        self.phone_finder = phone_finder
        # The country whose phone numbers need no prefix: "auto" is the pipeline language's.
        self.region = region_of(lang) if region == "auto" else (region.upper() or None)
        self.lang = lang
        self.written_dates = DEFAULT_WRITTEN_DATES if written_dates is None else written_dates

    @property
    def labels(self) -> Dict[str, str]:
        """rule -> label; the rules no preset or label_map names follow the NER's labels (see
        clinical_deid.rule_labels), resolved the first time the pipeline has any."""
        if self._resolved is None and self._nlp is not None:
            self.resolve_labels(self._nlp)
        return self._labels

    def resolve_labels(self, nlp: Language) -> None:
        """Label the rules no preset or label_map names after `nlp`'s NER (no-op without NER labels)."""
        known = ner_labels(nlp)
        if known:
            self._set_resolved(resolve_rule_labels([r for r in RULES if r not in self._given], known))

    def _set_resolved(self, resolved: Dict[str, Tuple[str, str, List[str]]]) -> None:
        self._resolved = {rule: (label, source, list(tied)) for rule, (label, source, tied) in resolved.items()}
        self._labels.update({rule: label for rule, (label, _, _) in self._resolved.items()})

    def label_sources(self) -> Dict[str, Tuple[str, str, List[str]]]:
        """rule -> (label, source, tied labels); source: preset, label_map, ner, own or tie."""
        labels = self.labels
        sources = {rule: (label, source, []) for rule, (label, source) in self._given.items()}
        sources.update(self._resolved or {})
        return {rule: sources.get(rule, (labels[rule], "own", [])) for rule in RULES}

    def initialize(self, get_examples: Optional[Callable[[], Iterable]] = None, *,
                   nlp: Optional[Language] = None) -> None:
        """Resolve the rules' labels from the NER's (initialized before: it comes first)."""
        if nlp is not None:
            self._nlp = nlp
            self.resolve_labels(nlp)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        _ = self.labels  # (resolved before saving)
        return srsly.json_dumps({"resolved": self._resolved}).encode("utf8")

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = tuple()) -> "DeidRules":
        resolved = srsly.json_loads(data.decode("utf8")).get("resolved")
        if resolved is not None:
            self._set_resolved(resolved)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "rule_labels.json").write_bytes(self.to_bytes())

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "DeidRules":
        file = ensure_path(path) / "rule_labels.json"
        return self.from_bytes(file.read_bytes()) if file.is_file() else self  # (saved before there was one)

    def __call__(self, doc: Doc) -> Doc:
        matches = find_structured_phi(doc.text, self.rules, self.validate_checksums,
                                      phone_finder=self.phone_finder, region=self.region,
                                      lang=self.lang if self.written_dates else None)
        spans, labels = [], self.labels
        for start, end, rule in matches:
            span = doc.char_span(start, end, label=labels[rule], alignment_mode=self.alignment_mode)
            if span is not None and len(span):
                spans.append(span)
        spans = filter_spans(spans)  # "expand" may make two matches share a token
        doc.spans[self.spans_key] = spans
        if spans:
            doc.ents = merge_spans(doc.ents, spans, self.policy)
        return doc


@Language.factory(
    "deid_rules",
    assigns=["doc.ents", "doc.spans"],
    default_config={
        "rules": DEFAULT_RULES,
        "preset": "auto",
        "label_map": {},
        "policy": "longest",
        "validate_checksums": True,
        "alignment_mode": "expand",
        "spans_key": "deid_rules",
        "phone_finder": DEFAULT_PHONE_FINDER,
        "region": "auto",
        "written_dates": DEFAULT_WRITTEN_DATES,
    },
)
def make_deid_rules(nlp: Language, name: str, rules: List[str], preset: str, label_map: Dict[str, str],
                    policy: str, validate_checksums: bool, alignment_mode: str, spans_key: str,
                    phone_finder: str, region: str, written_dates: bool) -> DeidRules:
    """Regex rules for structured PHI merged into doc.ents (see the module docstring).

    rules: which of RULES to run (POSTCODE is off by default). preset: meddocan |
    stockholm_epr | swedish_ner | none | auto (from nlp.lang). label_map: rule -> label
    overrides ("" switches a rule off; the others follow the NER's labels). policy: ner | longest |
    rules. phone_finder: auto | regex | phonenumbers (auto: regex for es and sv, else
    phonenumbers). region: the country whose phone numbers need no prefix ("auto": from
    nlp.lang). written_dates: DATE also finds dates with a month name and a year.
    """
    return DeidRules(name, nlp.lang, rules=rules, preset=preset, label_map=label_map, policy=policy,
                     validate_checksums=validate_checksums, alignment_mode=alignment_mode,
                     spans_key=spans_key, phone_finder=phone_finder, region=region,
                     written_dates=written_dates, nlp=nlp)
