"""National ID numbers by country, validated by python-stdnum: which module reads a
country's personal ID numbers, and where such numbers are in a text.

The ``id_generic`` surrogate of a valid national ID of the pipeline's country is drawn valid
in the same format (``clinical_deid.operators.ids``), and the ``NATIONAL_ID`` rule of
``deid_rules`` finds them (``clinical_deid.rules``). Spain (DNI, NIE) and Sweden
(personnummer) have rules and operators of their own.
"""
from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Iterator, Optional, Tuple

# python-stdnum's personal ID numbers by country (ISO code of the pipeline's locale); Spain
# and Sweden have rules and operators of their own. A module name with "*" begins with the birth date
# as DDMMYY, which the surrogate moves by the document's shift.
NATIONAL_IDS = {
    "NO": ("no.fodselsnummer*",), "DK": ("dk.cpr*",), "FI": ("fi.hetu*",), "DE": ("de.idnr",),
    "FR": ("fr.nir",), "IT": ("it.codicefiscale",), "PT": ("pt.cc", "pt.nif"), "NL": ("nl.bsn",),
    "BE": ("be.nn",), "AT": ("at.vnr",), "CH": ("ch.ssn",), "PL": ("pl.pesel",), "EE": ("ee.ik",),
    "GB": ("gb.nhs",), "US": ("us.ssn",), "IS": ("is_.kennitala",), "RO": ("ro.cnp",), "CZ": ("cz.rc",),
}

def national_id_module(text: str, country: str) -> Optional[ModuleType]:
    """The python-stdnum module of `country` that validates `text`, if any.

    text (str): An ID as written. country (str): The pipeline's country ("NO").
    RETURNS (Optional[ModuleType]): The module (fodselsnummer, cpr, ...), or None.
    """
    for name in NATIONAL_IDS.get(country.upper(), ()):
        module = importlib.import_module("stdnum." + name.rstrip("*"))
        try:
            if module.is_valid(text.strip()):
                return module
        except Exception:  # a module may raise on input far from its format
            continue
    return None


# Candidates: a run of letters and digits with "-" or "." inside ("131052-308T",
# "RCCMNL83S18D969H"), or digits in space-separated groups ("2 95 10 99 126 111 93").
_CANDIDATE = re.compile(
    r"(?<![\w.+/-])(?:[0-9A-Za-z][0-9A-Za-z.-]{6,22}[0-9A-Za-z]|\d(?:\d| (?=\d)){8,24}\d)(?![\w/-])"
)


def find_national_ids(text: str, country: str) -> Iterator[Tuple[int, int]]:
    """(start, end) of each valid national ID of `country` in `text` (six digits at least).

    text (str): A note. country (str): The pipeline's country ("NO").
    RETURNS (Iterator[Tuple[int, int]]): The IDs' offsets.
    """
    if country.upper() not in NATIONAL_IDS:
        return
    for m in _CANDIDATE.finditer(text):
        if sum(c.isdigit() for c in m.group()) >= 6 and national_id_module(m.group(), country) is not None:
            yield m.start(), m.end()
