"""Label maps without Python: what each label turns into, read from a file or inline JSON,
guessed from the label's name when nothing else says, and shown before a run.

A label's surrogate kind (``clinical_deid.labels.KINDS``) comes from, in this order:

* ``map``: the user's label map, ``--label-map labels.json``, ``--label-map '{"ID_SSN": "id_generic"}'``
  or ``--label-map ID_SSN=id_generic,LOCATION_OTHER=city`` (``clinical-deid``, ``package``, the
  project's ``label_map`` variable), merged over the preset;
* ``preset``: the pipeline's preset (MEDDOCAN, a Swedish NER corpus, the Stockholm EPR PHI corpus);
* ``guessed``: a guess from the label's words (``NAME_PATIENT`` → name, ``LOCATION_ZIP`` → territory,
  ``CONTACT_PHONE`` → phone, ``Date_Full`` → date; see ``KIND_GUESSES``);
* ``default``: ``default_kind`` (``redact``).

A label whose kind is ``redact`` has no surrogate: under pseudonymize it is redacted. The
table of a pipeline's labels (the NER's and deid_rules') is printed at the start of a run, and
those labels are listed in a warning, so that pseudonymize never becomes redact silently.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from spacy.language import Language
from wasabi import Printer

from .labels import KINDS

# Words of a label that say there is nothing of one kind to draw from ("LOCATION_OTHER", "MISC",
# sex): no guess, the label gets default_kind (listed loudly).
NO_GUESS = frozenset({"OTHER", "OTHERS", "MISC", "MISCELLANEOUS", "SEX", "GENDER", "SEXO", "KON", "GESCHLECHT"})
# (kind, words): the first kind with a word among a label's words (or two adjacent words joined:
# "FIRST_NAME" is FIRSTNAME, "E-MAIL" is EMAIL) is the guess. Specific kinds come before general
# ones: "PHONE_NUMBER" is a phone before NUMBER is an ID, "ID_PATIENT" an ID before PATIENT is a
# name, "LOCATION_ZIP" a postcode before LOCATION is a city, "FAMILY_NAME" a last name before
# FAMILY is a relative. Postcodes are "territory" (its operator draws a postcode's digits).
KIND_GUESSES: Tuple[Tuple[str, frozenset], ...] = tuple((kind, frozenset(words.split())) for kind, words in (
    ("ip", "IP IPADDR IPADDRESS IPV4 IPV6"),
    ("email", "EMAIL MAIL CORREO EPOST EPOSTADRESSE EPOSTADRESS"),
    ("url", "URL URLS URI WEB WEBSITE HOMEPAGE WEBPAGE"),
    ("phone", "PHONE PHONES TELEPHONE TEL FAX MOBILE CELL TELEFON TELEFONO TELEFONNUMMER TLF TELEFAX HANDY MOBIL"),
    ("date", "DATE DATES DOB BIRTHDATE FECHA FECHAS DATUM DATO DATOER"),
    ("age", "AGE AGES EDAD ALTER ALDER"),
    ("territory", "ZIP ZIPCODE POSTCODE POSTAL POSTALCODE PLZ POSTNUMMER POSTNR POSTNUMBER"),
    ("street", "STREET ADDRESS ADDR ROAD CALLE DIRECCION STRASSE GATA GATE ADRESSE ADRESS GATEADRESSE ANSCHRIFT"),
    ("id_generic", "ID IDS IDNUM SSN NUMBER NUM NR MRN RECORD MEDICALRECORD ACCOUNT LICENSE LICENCE VEHICLE "
                   "DEVICE BIOID HEALTHPLAN INSURANCE PASSPORT NIF DNI NIE PERSONNUMMER FODSELSNUMMER "
                   "IDENTIFIER ROOM BED"),
    ("country", "COUNTRY NATION NATIONALITY PAIS LAND"),
    ("hospital", "HOSPITAL HOSPITALS CLINIC CLINICA KLINIK KLINIKK SJUKHUS SYKEHUS KRANKENHAUS UNIT WARD "
                 "DEPARTMENT DEPT HEALTHCARE"),
    ("organisation", "ORG ORGANIZATION ORGANISATION INSTITUTION INSTITUCION COMPANY EMPLOYER FIRM AGENCY"),
    ("profession", "PROFESSION PROFESION OCCUPATION JOB BERUF YRKE"),
    ("territory", "STATE REGION PROVINCE PROVINCIA COUNTY TERRITORY TERRITORIO DISTRICT KOMMUNE FYLKE"),
    ("city", "CITY TOWN LOCATION LOC PLACE VILLAGE CIUDAD STADT ORT STAD STED MUNICIPALITY"),
    ("first_name", "FIRSTNAME GIVENNAME FORENAME VORNAME FORNAVN FORNAMN"),
    ("last_name", "LASTNAME SURNAME FAMILYNAME NACHNAME ETTERNAVN EFTERNAMN APELLIDO APELLIDOS"),
    ("relative", "RELATIVE RELATIVES FAMILY KIN FAMILIAR FAMILIARES"),
    ("name", "NAME NAMES PATIENT PASIENT DOCTOR PERSON PER PHYSICIAN NURSE STAFF CLINICIAN USERNAME USER "
             "NOMBRE NAMN NAVN ARZT LEGE LAKARE"),
))
_LABEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Letters that NFKD does not take apart ("FØDSELSNUMMER" is FODSELSNUMMER).
_PLAIN_LETTERS = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "ß": "ss", "Œ": "OE", "œ": "oe",
                                "Ł": "L", "ł": "l", "Đ": "D", "đ": "d"})


def label_words(label: str) -> List[str]:
    """The words of a label, upper case, marks dropped, and each pair of adjacent words joined.

    label (str): "NAME_PATIENT", "Date_Full", "PhoneNumber", "E-MAIL".
    RETURNS (List[str]): ["NAME", "PATIENT", "NAMEPATIENT"], ...
    """
    plain = "".join(c for c in unicodedata.normalize("NFKD", label.translate(_PLAIN_LETTERS))
                    if not unicodedata.combining(c))
    words = [w.upper() for w in _LABEL_WORD.findall(plain)]
    return words + [a + b for a, b in zip(words, words[1:])]


def guess_kind(label: str) -> Optional[str]:
    """The surrogate kind a label's name suggests (see KIND_GUESSES), or None.

    label (str): An entity label.
    RETURNS (Optional[str]): A kind of KINDS, or None (no word known, or OTHER, MISC, SEX ...).
    """
    words = set(label_words(label))
    if not words or words & NO_GUESS:
        return None
    for kind, known in KIND_GUESSES:
        if words & known:
            return kind
    return None


def check_kinds(mapping: Dict[str, str], where: str) -> Dict[str, str]:
    """Raise ValueError naming each label whose kind is not one of KINDS.

    mapping (Dict[str, str]): label -> kind.
    where (str): what the map is, for the message ("--label-map labels.json").
    RETURNS (Dict[str, str]): `mapping`.
    """
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a JSON object {{label: kind}}, not a {type(mapping).__name__}")
    bad = [f"label {label!r} has kind {kind!r}" for label, kind in mapping.items()
           if not isinstance(label, str) or not isinstance(kind, str) or kind not in KINDS]
    if bad:
        raise ValueError(f"{where}: unknown surrogate kind ({'; '.join(bad)}); valid kinds: {', '.join(KINDS)}")
    return mapping


def read_label_map(value: Union[str, Path, Dict[str, str], None]) -> Dict[str, str]:
    """A label map from a JSON file, an inline JSON object, LABEL=kind pairs, or a dict; "" and
    None: none.

    value (Union[str, Path, Dict[str, str], None]): '{"ID_SSN": "id_generic"}', a path to such a
        file, "ID_SSN=id_generic,LOCATION_OTHER=city" (the form a project.yml variable can hold:
        weasel cannot pass JSON through a variable), or the map itself.
    RETURNS (Dict[str, str]): label -> kind, every kind checked (ValueError naming the label
        and the valid kinds; the file and the JSON error's line and column for bad JSON).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, dict):
        return check_kinds(dict(value), "label map")
    text, where = str(value).strip(), f"--label-map {value}"
    if not text.startswith(("{", "[")) and "=" in text and not Path(text).is_file():
        return check_kinds(label_pairs(text), "--label-map")
    if not text.startswith(("{", "[")):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--label-map {path}: no such file (give a JSON file or an inline JSON object)")
        text = path.read_text(encoding="utf-8-sig")
    else:
        where = "--label-map (inline JSON)"
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    return check_kinds(mapping, where)


def label_pairs(text: str) -> Dict[str, str]:
    """text (str): "LABEL=kind,LABEL=kind" (spaces around the parts ignored).
    RETURNS (Dict[str, str]): label -> kind (not checked); ValueError for a part without "=".
    """
    mapping = {}
    for part in filter(str.strip, text.split(",")):
        label, sep, kind = (piece.strip() for piece in part.partition("="))
        if not sep or not label:
            raise ValueError(f"--label-map: {part.strip()!r} is not LABEL=kind (or give a JSON file or object)")
        mapping[label] = kind
    return mapping


def pipeline_labels(nlp: Language) -> List[str]:
    """The labels a pipeline can put on doc.ents: its entity components' (NER, entity ruler) and
    deid_rules' (of the rules it runs), sorted.

    nlp (Language): The pipeline.
    RETURNS (List[str]): The labels.
    """
    labels = set()
    for name, pipe in nlp.pipeline:  # (the enabled components)
        if "doc.ents" not in nlp.get_pipe_meta(name).assigns:
            continue
        pipe_labels = getattr(pipe, "labels", ())
        if isinstance(pipe_labels, dict):  # deid_rules: rule -> label, of the rules it runs
            labels.update(pipe_labels[rule] for rule in getattr(pipe, "rules", pipe_labels) if pipe_labels.get(rule))
        else:
            labels.update(str(label) for label in pipe_labels)
    return sorted(labels)


def label_kinds(transform, labels: Iterable[str]) -> List[Tuple[str, str, str]]:
    """(label, kind, source) of each label: source is map, preset, guessed or default.

    transform (DeidTransform): The component that decides the kinds.
    labels (Iterable[str]): The labels.
    RETURNS (List[Tuple[str, str, str]]): One row per label, in order.
    """
    return [(label, *transform.kind_source(label)) for label in labels]


def report_label_kinds(nlp: Language, msg: Printer, mode: Optional[str] = None) -> List[Tuple[str, str, str]]:
    """Print what each of the pipeline's labels turns into, and warn about the labels that have
    no surrogate (redacted under pseudonymize) and the map's labels the pipeline never predicts.

    nlp (Language): A pipeline with deid_transform.
    msg (Printer): Where to print (no_print: silent).
    mode (Optional[str]): The run's mode (default: the component's).
    RETURNS (List[Tuple[str, str, str]]): The table's rows (label, kind, source).
    """
    transform = nlp.get_pipe("deid_transform")
    mode = mode or transform.mode
    labels = pipeline_labels(nlp)
    rows = label_kinds(transform, labels)
    if rows:
        msg.table(rows, header=("Label", "Kind", "Source"), divider=True,
                  title=f"What each label turns into ({mode})")
    redacted = [f"{label} ({source})" for label, kind, source in rows if kind == "redact"]
    if redacted and mode == "pseudonymize":
        msg.warn(f"{len(redacted)} label(s) have no surrogate and are REDACTED under pseudonymize: "
                 f"{', '.join(redacted)}",
                 f"Give them a kind with --label-map '{{\"LABEL\": \"kind\"}}' (kinds: {', '.join(KINDS)})")
    unused = sorted(set(transform.user_map) - set(labels)) if labels else []
    if unused:
        msg.warn(f"--label-map names label(s) this pipeline does not predict: {', '.join(unused)} "
                 f"(its labels: {', '.join(labels)})")
    return rows


def apply_label_map(nlp: Language, mapping: Optional[Dict[str, str]]) -> None:
    """Merge a label map over the pipeline's deid_transform's (no-op when empty).

    nlp (Language): A pipeline with deid_transform.
    mapping (Optional[Dict[str, str]]): label -> kind (checked: ValueError naming the label).
    """
    if mapping:
        nlp.get_pipe("deid_transform").set_label_map(mapping)


def map_overrides(mapping: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """The config override of a label map (spacy assemble, package_pipeline).

    mapping (Dict[str, str]): label -> kind.
    RETURNS (Dict[str, Dict[str, str]]): {"components.deid_transform.label_map": mapping} or {}.
    """
    return {"components.deid_transform.label_map": dict(mapping)} if mapping else {}

