"""What each label of a label set turns into: its surrogate kind.

``deid_transform`` maps a span's label to a kind (KINDS) through a preset (the label sets of
MEDDOCAN, a Swedish NER corpus and the Stockholm EPR PHI corpus, or ``auto``, their union)
and the config's ``label_map`` (a label in neither gets a kind guessed from its name: see
``clinical_deid.label_map``); the kind names the operator that draws its surrogate (see
``clinical_deid.operators``). LOCALES gives the Faker locale of a pipeline language.
"""
from __future__ import annotations

from typing import Dict

MODES = ("redact", "mask", "pseudonymize")
# What a label turns into under `pseudonymize`. "redact": no surrogate of that kind (under
# pseudonymize: `no_surrogate`, redacted by default; masked under mask); "relative": a name
# if it is one, else (a kinship word: "madre", "hermanos") as "redact"; "mask" and "keep"
# apply in every mode ("keep": not PHI, left alone).
KINDS = (
    "name", "first_name", "last_name", "relative", "street", "city", "territory", "country", "hospital",
    "organisation", "date", "age", "phone", "email", "id_es_dni", "id_se_personnummer",
    "id_generic", "url", "ip", "profession", "keep", "redact", "mask",
)

# Labels that deid_rules adds when a label set has no class for them.
RULE_KINDS = {
    "EMAIL": "email", "URL": "url", "IP": "ip", "PHONE": "phone", "FAX": "phone",
    "DNI": "id_es_dni", "NIE": "id_es_dni", "PERSONNUMMER": "id_se_personnummer",
    "DATE": "date", "POSTCODE": "territory",
    # Another country's personal ID (python-stdnum): id_generic draws a valid one of its format.
    "NATIONAL_ID": "id_generic",
}
PRESETS: Dict[str, Dict[str, str]] = {
    "meddocan": {
        "NOMBRE_SUJETO_ASISTENCIA": "name",
        "NOMBRE_PERSONAL_SANITARIO": "name",
        # "su madre", "hermanos" or a relative's name: see vocabulary.RELATIONS.
        "FAMILIARES_SUJETO_ASISTENCIA": "relative",
        "EDAD_SUJETO_ASISTENCIA": "age",
        # No surrogate: a changed sex would contradict the note (organs, pronouns, agreement),
        # so it is redacted in every mode; map it to "keep" to leave it in the text.
        "SEXO_SUJETO_ASISTENCIA": "redact",
        "FECHAS": "date",
        "TERRITORIO": "territory",
        "CALLE": "street",
        "PAIS": "country",
        "HOSPITAL": "hospital",
        "CENTRO_SALUD": "hospital",
        "INSTITUCION": "organisation",
        "ID_SUJETO_ASISTENCIA": "id_generic",
        "ID_ASEGURAMIENTO": "id_generic",
        "ID_TITULACION_PERSONAL_SANITARIO": "id_generic",
        "ID_CONTACTO_ASISTENCIAL": "id_generic",
        "ID_EMPLEO_PERSONAL_SANITARIO": "id_generic",
        "CORREO_ELECTRONICO": "email",
        "NUMERO_TELEFONO": "phone",
        "NUMERO_FAX": "phone",
        "PROFESION": "profession",
        # Free-form ("other identifying facts"): nothing of the same kind to draw from.
        "OTROS_SUJETO_ASISTENCIA": "redact",
        "URL_WEB": "url",
        "DIREC_PROT_INTERNET": "ip",
    },
    "swedish_ner": {"PER": "name", "LOC": "city", "ORG": "organisation", "MISC": "redact"},
    "stockholm_epr": {
        "First_Name": "first_name",
        "Last_Name": "last_name",
        "Phone_Number": "phone",
        "Age": "age",
        "Full_Date": "date",
        "Date_Full": "date",  # the name some releases of the corpus use
        "Date_Part": "date",
        "Health_Care_Unit": "hospital",
        "Location": "city",
    },
}
for _preset in PRESETS.values():
    for _label, _kind in RULE_KINDS.items():
        _preset.setdefault(_label, _kind)
# The three label sets share no label, so their union serves any of them.
PRESETS["auto"] = {k: v for preset in list(PRESETS.values()) for k, v in preset.items()}

# Faker locale for a pipeline language.
LOCALES = {
    "es": "es_ES", "sv": "sv_SE", "en": "en_US", "ca": "es_ES", "da": "da_DK", "de": "de_DE",
    "et": "et_EE", "fi": "fi_FI", "fr": "fr_FR", "it": "it_IT", "nb": "no_NO", "nl": "nl_NL",
    "pt": "pt_PT",
}

# Kinds drawn as names (a surrogate per name part, see clinical_deid.operators.names).
NAME_KINDS = ("name", "first_name", "last_name")
# Kinds whose distinctive words (not generic words) identify on their own: no surrogate may
# bring one back, and (name, hospital, organisation) their other mentions are replaced too.
PART_KINDS = (*NAME_KINDS, "street", "city", "territory", "country", "hospital", "organisation")
PROPAGATED_PART_KINDS = (*NAME_KINDS, "hospital", "organisation")
