"""Pipelines and notes the de-identification tests share: spacy.blank + an entity_ruler that
plays the NER model (saved and loaded back as a trained pipeline would be), or
deid_transform alone on a doc with its entities set by hand."""
import spacy

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)

TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}

NOTE_ES = (
    "Nombre: Ana García López. Sexo: M. Edad: 45 años. DNI: 45678912S. NHC: 7984385.\n"
    "Domicilio: Calle del Abedul 12, 28034 Getafe, España.\n"
    "Ingresa en el Hospital Universitario de Getafe el 12/03/2019 por disnea. "
    "La Sra. García fue valorada por el Dr. Ignacio Ballesteros Ruiz el 14/03/2019 "
    "y dada de alta el 3 de abril de 2019. Su hija Lucía avisa al teléfono 612 345 678. "
    "Correo: ana.garcia.lopez@gmail.com. Control en abril de 2019. ANA GARCÍA trabaja de panadera."
)
PATTERNS_ES = [
    ("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"),
    ("NOMBRE_SUJETO_ASISTENCIA", "García"),
    ("NOMBRE_SUJETO_ASISTENCIA", "ANA GARCÍA"),
    ("SEXO_SUJETO_ASISTENCIA", "M"),
    ("EDAD_SUJETO_ASISTENCIA", "45 años"),
    ("ID_SUJETO_ASISTENCIA", "7984385"),
    ("CALLE", "Calle del Abedul 12"),
    ("TERRITORIO", "28034"),
    ("TERRITORIO", "Getafe"),
    ("PAIS", "España"),
    ("HOSPITAL", "Hospital Universitario de Getafe"),
    ("FECHAS", "12/03/2019"),
    ("FECHAS", "14/03/2019"),
    ("FECHAS", "3 de abril de 2019"),
    ("FECHAS", "abril de 2019"),
    ("NOMBRE_PERSONAL_SANITARIO", "Ignacio Ballesteros Ruiz"),
    ("FAMILIARES_SUJETO_ASISTENCIA", "Lucía"),
    ("PROFESION", "panadera"),
]


def ruler_pipeline(lang, patterns, rules=True, **transform_config):
    """A blank `lang` pipeline: entity_ruler with `patterns` [(label, text)], deid_rules, deid_transform."""
    nlp = spacy.blank(lang, config=TOKENIZER)
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns([{"label": label, "pattern": text} for label, text in patterns])
    if rules:
        nlp.add_pipe("deid_rules")
    nlp.add_pipe("deid_transform", config=transform_config)
    return nlp


def spans_by_text(doc):
    """The span records of `doc` by their original text."""
    return {doc.text[s["start"] : s["end"]]: s for s in doc._.deid_spans}


def doc_with_ents(nlp, text, ents):
    """`text` as a doc whose entities are `ents` = [(label, string, nth occurrence)]."""
    doc = nlp.make_doc(text)
    spans = []
    for label, string, nth in ents:
        start = -1
        for _ in range(nth + 1):
            start = text.index(string, start + 1)
        spans.append(doc.char_span(start, start + len(string), label=label))
    doc.ents = spans
    return doc


def transform_doc(text, ents, **config):
    """deid_transform (no rules) on `text` with `ents` = [(label, string, nth occurrence)]."""
    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", **config})
    return transform, transform(doc_with_ents(nlp, text, ents))


KEY = bytes(range(100, 132))


def keyed(text, ents, key=KEY, group=None, **config):
    """deid_transform with `key` on `text` with `ents` [(label, string)]: original -> replacement."""
    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", **config})
    transform.set_key(key)
    doc = doc_with_ents(nlp, text, [(label, string, 0) for label, string in ents])
    doc._.deid_group = group
    return {text[s["start"]:s["end"]]: s["replacement"] for s in transform(doc)._.deid_spans}
