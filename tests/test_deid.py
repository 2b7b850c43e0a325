"""The de-identification components: deid_transform (redact, mask, pseudonymize) and deid_rules.

Pipelines are spacy.blank + an entity_ruler that plays the NER model, saved and loaded back
with spacy.load, as a trained pipeline would be.
"""
import random
import re
from datetime import date

import pytest
import spacy
from spacy.tokens import Span

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.dates import date_fields, find_dates
from clinical_deid.labels import PRESETS
from clinical_deid.locale_data import LocaleData, locale_data
from clinical_deid.surrogates import Surrogates
from clinical_deid.rules import find_structured_phi, is_valid_dni, is_valid_personnummer

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
    nlp = spacy.blank(lang, config=TOKENIZER)
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "ORTH"})
    ruler.add_patterns([{"label": label, "pattern": text} for label, text in patterns])
    if rules:
        nlp.add_pipe("deid_rules")
    nlp.add_pipe("deid_transform", config=transform_config)
    return nlp


@pytest.fixture(scope="module")
def nlp_es(tmp_path_factory):
    path = tmp_path_factory.mktemp("es") / "model"
    ruler_pipeline("es", PATTERNS_ES, seed=7).to_disk(path)
    return spacy.load(path)


def spans_by_text(doc):
    return {doc.text[s["start"] : s["end"]]: s for s in doc._.deid_spans}


def test_loaded_pipeline_keeps_the_config(nlp_es):
    assert nlp_es.pipe_names == ["entity_ruler", "deid_rules", "deid_transform"]
    transform = nlp_es.get_pipe("deid_transform")
    assert transform.seed == 7 and transform.mode == "pseudonymize" and transform.locale == "es_ES"


def test_offsets_in_input_and_output(nlp_es):
    doc = nlp_es(NOTE_ES)
    out = doc._.deidentified
    ents = {(e.start_char, e.end_char): e.label_ for e in doc.ents}
    assert len(doc._.deid_spans) == len(ents) > 15
    pos = out_pos = 0
    for span in doc._.deid_spans:
        # Text between entities is copied unchanged, and each span maps onto its replacement.
        assert NOTE_ES[pos : span["start"]] == out[out_pos : span["out_start"]]
        assert out[span["out_start"] : span["out_end"]] == span["replacement"]
        assert ents[span["start"], span["end"]] == span["label"]
        pos, out_pos = span["end"], span["out_end"]
    assert NOTE_ES[pos:] == out[out_pos:]


def test_no_original_phi_left(nlp_es):
    doc = nlp_es(NOTE_ES)
    out = doc._.deidentified
    originals = {NOTE_ES[s["start"] : s["end"]] for s in doc._.deid_spans}
    # The rules found what the ruler does not know: the DNI, the phone, the e-mail.
    assert {"45678912S", "612 345 678", "ana.garcia.lopez@gmail.com"} <= originals
    # As a word, any case ("M" is in "Madrid" by chance); strings of 4+ characters anywhere.
    leaked = [o for o in originals if re.search(rf"(?<!\w){re.escape(o)}(?!\w)", out, re.IGNORECASE)
              or (len(o) >= 4 and o.casefold() in out.casefold())]
    assert not leaked
    for word in ("Ana", "García", "López", "Ignacio", "Ballesteros", "Lucía", "Getafe", "Abedul"):
        assert word not in out


def test_surrogates_are_consistent_within_a_document(nlp_es):
    doc = nlp_es(NOTE_ES)
    by_text = spans_by_text(doc)
    first, last, second_last = by_text["Ana García López"]["replacement"].split()
    assert by_text["García"]["replacement"] == last  # the surname alone
    assert by_text["ANA GARCÍA"]["replacement"] == f"{first} {last}".upper()  # any case
    # Each "Getafe" (the town, and inside the hospital's name) was replaced; the town twice alike.
    assert doc._.deidentified.count(by_text["Getafe"]["replacement"]) >= 1
    # Same output for the same text, whatever else is in the batch or the batch size.
    docs = list(nlp_es.pipe(["Otra nota: Ana García López.", NOTE_ES, NOTE_ES], batch_size=1))
    assert docs[1]._.deidentified == docs[2]._.deidentified == doc._.deidentified


def test_seed_and_text_decide_the_surrogates(nlp_es, tmp_path):
    other = ruler_pipeline("es", PATTERNS_ES, seed=8)
    assert other(NOTE_ES)._.deidentified != nlp_es(NOTE_ES)._.deidentified
    assert ruler_pipeline("es", PATTERNS_ES, seed=7)(NOTE_ES)._.deidentified == nlp_es(NOTE_ES)._.deidentified


def _dates(text):
    """(year, month, day) of each date in text."""
    return [tuple(reversed(date_fields(m))) for _, _, m in find_dates(text)]


def test_date_shift_keeps_intervals(nlp_es):
    doc = nlp_es(NOTE_ES)
    by_text = spans_by_text(doc)
    originals = ["12/03/2019", "14/03/2019", "3 de abril de 2019"]
    new = [by_text[o]["replacement"] for o in originals]
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", new[0]) and re.fullmatch(r"\d{1,2} de [a-z]+ de \d{4}", new[2])
    old_dates = [date(*_dates(o)[0]) for o in originals]
    new_dates = [date(*_dates(n)[0]) for n in new]
    shift = new_dates[0] - old_dates[0]
    assert shift.days != 0
    assert all(n - o == shift for o, n in zip(old_dates, new_dates))
    # "abril de 2019" moves with the same offset (from the middle of the month).
    moved = date(2019, 4, 15) + shift
    assert _dates(by_text["abril de 2019"]["replacement"]) == [(moved.year, moved.month, None)]


def test_find_dates_formats():
    found = lambda text: [(m.group(), ) for _, _, m in find_dates(text)]  # noqa: E731
    assert found("el 12-03-2019 y 2019-03-14") == [("12-03-2019",), ("2019-03-14",)]
    assert found("3 maj 2018") == [("3 maj 2018",)]
    assert found("30/1 2013 och 3/5-18") == [("30/1 2013",), ("3/5-18",)]
    assert found("12 de marzo del 2019") == [("12 de marzo del 2019",)]
    assert found("31/02/2019") == []  # not a date: a surrogate date replaces it
    assert found("en 2015") == [("2015",)]


def test_age_stays_plausible_and_consistent(nlp_es):
    doc = nlp_es(NOTE_ES + " Paciente de 45 años.")
    ages = [s["replacement"] for s in doc._.deid_spans if s["label"] == "EDAD_SUJETO_ASISTENCIA"]
    assert len(ages) == 2 and ages[0] == ages[1]
    n = int(ages[0].split()[0])
    assert ages[0].endswith(" años") and n != 45 and abs(n - 45) <= 2


def test_redact_and_mask_modes(nlp_es):
    transform = nlp_es.get_pipe("deid_transform")
    try:
        transform.mode = "redact"
        out = nlp_es(NOTE_ES)._.deidentified
        assert out.startswith("Nombre: [NOMBRE_SUJETO_ASISTENCIA]. Sexo: [SEXO_SUJETO_ASISTENCIA]. Edad: [EDAD_SUJETO_ASISTENCIA]. DNI: [ID_SUJETO_ASISTENCIA].")
        transform.mode = "mask"
        doc = nlp_es(NOTE_ES)
        out = doc._.deidentified
        assert len(out) == len(NOTE_ES)
        assert out.startswith("Nombre: *** ****** *****. Sexo: *. Edad: ** ****.")
        assert all(s["out_start"] == s["start"] for s in doc._.deid_spans)
        with pytest.raises(ValueError):
            transform.mode = "shuffle"
    finally:
        transform.mode = "pseudonymize"


def test_valid_dni_nie_and_personnummer_surrogates():
    data_es, data_sv = locale_data("es_ES"), locale_data("sv_SE")
    for i in range(200):
        s = Surrogates(data_es, random.Random(i), [], 365, 2)
        dni, nie = s.get("id_es_dni", "12345678Z"), s.get("id_es_dni", "x-1234567-l")
        assert re.fullmatch(r"\d{8}[A-Z]", dni) and is_valid_dni(dni)
        assert re.fullmatch(r"[xyz]-\d{7}-[a-z]", nie) and is_valid_dni(nie)
        assert is_valid_dni(s.get("id_generic", "87654321X"))  # ID labels detect the DNI shape
        t = Surrogates(data_sv, random.Random(i), [], 365, 2)
        for original in ("19121212-1212", "8112189876", "640823+3234"):
            new = t.get("id_se_personnummer", original)
            assert len(new) == len(original) and is_valid_personnummer(new), new
            # The serial's third digit carries the sex: its parity is kept.
            assert int(new[-2]) % 2 == int(original[-2]) % 2
    assert is_valid_personnummer("19121212-1212") and is_valid_personnummer("121212-1212")
    assert not is_valid_personnummer("19121212-1213") and not is_valid_dni("12345678A")


def test_swedish_stockholm_labels(tmp_path):
    text = "Anna Andersson, 67 år, kom 3 maj 2018 till Karolinska. Andersson ringer 08-123 456 78. Anna mår bra."
    patterns = [("First_Name", "Anna"), ("Last_Name", "Andersson"), ("Age", "67"),
                ("Full_Date", "3 maj 2018"), ("Health_Care_Unit", "Karolinska")]
    ruler_pipeline("sv", patterns).to_disk(tmp_path / "sv")
    nlp = spacy.load(tmp_path / "sv")
    doc = nlp(text)
    assert nlp.get_pipe("deid_transform").locale == "sv_SE"
    assert nlp.get_pipe("deid_rules").labels["PHONE"] == "Phone_Number"
    reps = {}
    for s in doc._.deid_spans:
        reps.setdefault(text[s["start"] : s["end"]], set()).add(s["replacement"])
    assert all(len(v) == 1 for v in reps.values())  # consistent
    data = locale_data("sv_SE")
    assert next(iter(reps["Anna"])).casefold() in data.first_female.lookup | data.first_male.lookup
    assert next(iter(reps["Andersson"])).casefold() in data.last.lookup
    assert re.fullmatch(r"\d{1,2} [a-zåäö]+ \d{4}", next(iter(reps["3 maj 2018"])))
    assert re.fullmatch(r"08-\d{3} \d{3} \d{2}", next(iter(reps["08-123 456 78"])))
    for original in ("Anna", "Andersson", "Karolinska", "3 maj 2018", "08-123 456 78"):
        assert original not in doc._.deidentified


def test_rules_find_structured_phi():
    text = ("Mail ana@correo.es, http://www.h.es/x. IP 10.0.0.1. DNI 12345678Z (no: 12345678A), NIE X1234567L. "
            "Tel 612 345 678, Fax: 93 456 78 90. Alta 01.03.2019. PN 19121212-1212. Telefon 070-123 45 67.")
    found = {text[s:e]: rule for s, e, rule in find_structured_phi(text)}
    assert found == {
        "ana@correo.es": "EMAIL", "http://www.h.es/x": "URL", "10.0.0.1": "IP", "12345678Z": "DNI",
        "X1234567L": "NIE", "612 345 678": "PHONE", "93 456 78 90": "FAX", "01.03.2019": "DATE",
        "19121212-1212": "PERSONNUMMER", "070-123 45 67": "PHONE",
    }
    assert "12345678A" in {text[s:e] for s, e, _ in find_structured_phi(text, validate=False)}
    # Numbers of IDs are no phone numbers (MEDDOCAN): by their grouping or by their label.
    assert find_structured_phi("NASS: 89-89532-56. NºCol: 02-08-17593. Episodio: 632632225.") == []
    postcodes = find_structured_phi("C.P. 28034 Getafe; 123 45 Stockholm", rules=["POSTCODE"])
    assert [rule for *_, rule in postcodes] == ["POSTCODE", "POSTCODE"]


@pytest.mark.parametrize("policy,expected", [
    # The ruler (the "model") says "Tel 612" is a phone; the rule finds "612 345 678".
    ("ner", [("Tel 612", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
    ("longest", [("612 345 678", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
    ("rules", [("612 345 678", "NUMERO_TELEFONO"), ("12345678Z", "ID_SUJETO_ASISTENCIA")]),
])
def test_rules_merge_with_ner(policy, expected):
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("entity_ruler").add_patterns([
        {"label": "NUMERO_TELEFONO", "pattern": [{"ORTH": "Tel"}, {"ORTH": "612"}]},
        {"label": "NOMBRE_SUJETO_ASISTENCIA", "pattern": "Ana"},
    ])
    nlp.add_pipe("deid_rules", config={"policy": policy})
    doc = nlp("Ana: Tel 612 345 678, DNI 12345678Z.")
    assert [(e.text, e.label_) for e in doc.ents] == [("Ana", "NOMBRE_SUJETO_ASISTENCIA")] + expected
    assert [s.text for s in doc.spans["deid_rules"]] == ["612 345 678", "12345678Z"]


def test_label_maps_presets_and_overrides():
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PER", "pattern": "Ana"}, {"label": "XYZ", "pattern": "Soria"}])
    nlp.add_pipe("deid_rules", config={"label_map": {"EMAIL": "", "DNI": "DOCUMENTO"}})
    nlp.add_pipe("deid_transform", config={"preset": "swedish_ner", "label_map": {"PER": "keep"}, "default_kind": "mask"})
    doc = nlp("Ana vive en Soria, DNI 12345678Z, ana@correo.es.")
    assert doc._.deidentified.startswith("Ana vive en *****, DNI ")
    assert "ana@correo.es" in doc._.deidentified  # EMAIL rule switched off
    assert [s["label"] for s in doc._.deid_spans][-1] == "DOCUMENTO"
    assert set(PRESETS["meddocan"]) >= {"FECHAS", "CORREO_ELECTRONICO", "EMAIL", "PERSONNUMMER"}
    with pytest.raises(ValueError):
        nlp.add_pipe("deid_transform", name="bad", config={"label_map": {"PER": "nickname"}})
    with pytest.raises(ValueError):
        nlp.add_pipe("deid_rules", name="bad_rules", config={"policy": "random"})


def test_locale_data_is_built_once():
    assert locale_data("es_ES") is locale_data("es_ES")
    assert isinstance(locale_data("es_ES"), LocaleData)


def test_shifted_dates_do_not_land_on_other_dates():
    # A year moved by a few months may stay the same year, and a moved date may land on
    # another date of the note: the offset is drawn so that no original date string is left.
    text = "Ingreso 2017-12-30, alta 2018-01-02, control 2018-01-03. Ya operado en 2018."
    patterns = [("FECHAS", d) for d in ("2017-12-30", "2018-01-02", "2018-01-03", "2018")]
    for seed in range(30):
        out = ruler_pipeline("es", patterns, rules=False, seed=seed)(text)._.deidentified
        assert not [d for _, d in patterns if d in out], (seed, out)


def test_no_surrogate_brings_back_an_original():
    """Ages one delta apart, years next to each other, a hospital named after a saint, a
    drawn ID or town that happens to be a word of the note: none may leave an original
    string in the output (found on MEDDOCAN's test notes by scripts/residual_phi.py)."""
    text = ("Edad: 77 años; su hermano, de 79 años. Operado en 2005, 2006 y 2007. "
            "Hospital Sant Joan de Reus. NHC: joven.")
    patterns = [("EDAD_SUJETO_ASISTENCIA", "77 años"), ("EDAD_SUJETO_ASISTENCIA", "79 años"),
                *[("FECHAS", y) for y in ("2005", "2006", "2007")],
                ("HOSPITAL", "Hospital Sant Joan de Reus"), ("ID_SUJETO_ASISTENCIA", "joven")]
    for seed in range(30):
        out = ruler_pipeline("es", patterns, rules=False, seed=seed)(text)._.deidentified
        left = [p for _, p in patterns if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", out)]
        assert not left and "Sant" not in out and "Joan" not in out, (seed, out)
    # A place drawn for a surrogate must not be a distinctive word of an original.
    surrogates = Surrogates(locale_data("es_ES"), random.Random(0), [("hospital", "Hospital Povisa Salamanca")], 365, 2)
    assert surrogates.leaks("Hospital Universitario de Salamanca") and not surrogates.leaks("Hospital General de Lugo")


def test_words_of_a_found_name_are_replaced_elsewhere():
    """"Ballesteros" of a found "Ignacio Ballesteros" is replaced where the model missed it,
    with the same surname; a capitalised word the note also writes in lower case is not."""
    text = "Valorado por Ignacio Ballesteros y Paciente Ruiz. El paciente vuelve; Ballesteros lo anota."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none"})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(13, 32, label="NOMBRE_PERSONAL_SANITARIO"),
                doc.char_span(35, 48, label="NOMBRE_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert "Ballesteros" not in out and [s["source"] for s in spans] == ["ner", "ner", "propagated"]
    assert spans[0]["replacement"].split()[-1] == spans[2]["replacement"]
    assert "El paciente vuelve" in out  # and "Paciente" was not propagated (three spans)


def test_sex_is_redacted_unless_kept_and_an_overlong_kept_span_is_redacted(nlp_es):
    """Sex has no surrogate that keeps the note coherent: redacted, unless the label is mapped
    to "keep". A wrong kept prediction stretched over other PHI must not pass it through: a
    kept span longer than max_kept_tokens is redacted."""
    assert "Sexo: [SEXO_SUJETO_ASISTENCIA]." in nlp_es(NOTE_ES)._.deidentified
    text = "Sexo: M. Nombre: Ana García López, calle del Abedul 12."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none", "label_map": {"SEXO_SUJETO_ASISTENCIA": "keep"}})
    doc = nlp.make_doc(text)
    short = doc.char_span(6, 7, label="SEXO_SUJETO_ASISTENCIA")
    long = doc.char_span(text.index("Nombre"), len(text) - 1, label="SEXO_SUJETO_ASISTENCIA")
    doc.ents = [short]
    assert nlp.get_pipe("deid_transform")(doc)._.deidentified == text  # "M" kept
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(6, 7, label="SEXO_SUJETO_ASISTENCIA"),
                doc.char_span(long.start_char, long.end_char, label="SEXO_SUJETO_ASISTENCIA")]
    out = nlp.get_pipe("deid_transform")(doc)._.deidentified
    assert out == "Sexo: M. [SEXO_SUJETO_ASISTENCIA]."
    assert "García" not in out and "Abedul" not in out


def test_other_mentions_of_a_found_string_are_replaced_too():
    """The model tags "Getafe" once; its other mentions go with it, with the same surrogate.
    Short strings ("45") are not propagated: they recur by chance."""
    text = "Vive en Getafe. Edad: 45. Trasladado desde Getafe; 45 pulsaciones."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none"})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(8, 14, label="TERRITORIO"), doc.char_span(22, 24, label="EDAD_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert "Getafe" not in out and [s["source"] for s in spans] == ["ner", "ner", "propagated"]
    assert spans[0]["replacement"] == spans[2]["replacement"]
    assert out.endswith("; 45 pulsaciones.")
    nlp.get_pipe("deid_transform").propagate = False
    assert "Getafe" in nlp.get_pipe("deid_transform")(doc)._.deidentified


def test_a_bare_age_takes_its_unit_and_goes_with_it():
    """The model tags "8" of "8 días": the age is "8 días", and its other mentions go too."""
    text = "Edad: 8 días. Neonato de 8 días de edad; 8 mg de hierro."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none", "seed": 3})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(6, 7, label="EDAD_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [(text[s["start"]:s["end"]], s["source"]) for s in spans] == [("8 días", "ner"), ("8 días", "propagated")]
    assert "8 días" not in out and out.endswith("; 8 mg de hierro.")


def test_word_runs_and_strings_to_avoid():
    from clinical_deid.folding import word_runs

    assert list(word_runs("Ana  García, 45")) == ["Ana", "Ana García", "Ana García, 45", "García", "García, 45", "45"]
    surrogates = Surrogates(locale_data("es_ES"), random.Random(0), [], 365, 2, avoid_strings={"garcía", "12/03/2019"})
    assert surrogates.leaks("Ana García López") and surrogates.leaks("el 12/03/2019")
    assert not surrogates.leaks("Ana Garcías") and not surrogates.leaks("112/03/2019")


def test_kinship_words_have_no_surrogate_but_relatives_names_do():
    text = "Su madre y su hermana Lucía viven en casa."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none", "seed": 2})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(3, 8, label="FAMILIARES_SUJETO_ASISTENCIA"),
                doc.char_span(22, 27, label="FAMILIARES_SUJETO_ASISTENCIA")]
    out = nlp.get_pipe("deid_transform")(doc)._.deidentified
    assert out.startswith("Su [FAMILIARES_SUJETO_ASISTENCIA] y su hermana ") and "Lucía" not in out
    assert "[" not in out.split("hermana ")[1]  # a name for the name
    nlp.get_pipe("deid_transform").no_surrogate = "keep"  # a training corpus: kept as it is
    assert nlp.get_pipe("deid_transform")(doc)._.deidentified.startswith("Su madre y su hermana ")
    with pytest.raises(ValueError, match="no_surrogate"):
        ruler_pipeline("es", [], no_surrogate="hide")


def test_street_surrogates_keep_the_form_of_the_original():
    surrogates = Surrogates(locale_data("es_ES"), random.Random(0), [], 365, 2)
    for original, form in [("C/ Irunlarrea, 3", r"C/ \D+, \d"), ("Avda. de França, s/n", r"Avda\. de \D+, s/n"),
                           ("Paseo de la Castellana, 261", r"Paseo de la \D+, \d{3}"),
                           ("Av. puerta de hierro 66, 2 D", r"Av\. \D+ \d+, \d [A-Z]")]:
        new = surrogates.get("street", original)
        assert re.fullmatch(form, new) and new != original, (original, new)
    # Floor and door: digits and the door letter drawn, "º", "izda" and "s/n" kept; a span that
    # ran on over a town keeps none of it.
    assert re.fullmatch(r"Calle \D+ \d, \dº izda", surrogates.get("street", "Calle Mayor 5, 2º izda"))
    assert "Albacete" not in surrogates.get("street", "Calle Ginzo de limia 56, 1D Albacete")
    # "Bajo" of the original's number part is no distinctive word: kept, and the name drawn
    # still avoids the note's other originals.
    surrogates = Surrogates(locale_data("es_ES"), random.Random(0), [("street", "Paseo Miguel Galvan, 35, Bajo A"), ("country", "España")], 365, 2)
    new = surrogates.get("street", "Paseo Miguel Galvan, 35, Bajo A")
    assert re.fullmatch(r"Paseo \D+, \d\d, Bajo [A-Z]", new) and not surrogates.leaks(new)


# --------------------------------------------------------------------------
# Other mentions in any case or accent form (issue 10, item 3)
# --------------------------------------------------------------------------


def _transform_doc(text, ents, **config):
    """deid_transform (no rules) on `text` with `ents` = [(label, string, nth occurrence)]."""
    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", **config})
    doc = nlp.make_doc(text)
    spans = []
    for label, string, nth in ents:
        start = -1
        for _ in range(nth + 1):
            start = text.index(string, start + 1)
        spans.append(doc.char_span(start, start + len(string), label=label))
    doc.ents = spans
    return transform, transform(doc)


@pytest.mark.parametrize("mode", ["redact", "pseudonymize"])
@pytest.mark.parametrize("found,again", [
    ("Ana García", "ANA GARCÍA"), ("Ana García", "ana garcía"), ("ANA GARCÍA", "Ana García"),
    ("Ana García", "ANA GARCIA"), ("Ana García", "ana garcia"), ("Strauß", "STRAUSS"), ("Strauss", "STRAUß"),
    ("İnce Yılmaz", "ince yılmaz"), ("Ince", "İNCE"),
    ("Ana García", "Ana Garci\u0301a"), ("Ana Garci\u0301a", "Ana García"),  # NFD and NFC
])
def test_a_found_string_is_replaced_in_any_case_or_accent_form(found, again, mode):
    text = f"Paciente: {found}, 45 años. Control: {again} acude sola."
    _, doc = _transform_doc(text, [("NOMBRE_SUJETO_ASISTENCIA", found, 0)], mode=mode, seed=1)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [s["source"] for s in spans] == ["ner", "propagated"], (found, again)
    assert text[spans[1]["start"]:spans[1]["end"]] == again  # exact offsets, marks included
    assert out.endswith(" acude sola.") and found not in out and again not in out
    if mode == "pseudonymize":  # the same surrogate, in the case of the mention
        assert spans[1]["replacement"].casefold() == spans[0]["replacement"].casefold()


def test_a_name_part_in_another_case_goes_but_a_prose_word_stays():
    """"GARCÍA" and "Garcia" alone go with the found "Ana García"; "Rosa" of a found "Rosa
    Pérez" stays where the note also writes "rosa" in lower case (a word of prose)."""
    text = "Ana García y Rosa Pérez. Vuelve GARCÍA; Garcia firma. Piel rosa. Rosa llama."
    _, doc = _transform_doc(text, [("NOMBRE_SUJETO_ASISTENCIA", "Ana García", 0),
                                   ("NOMBRE_PERSONAL_SANITARIO", "Rosa Pérez", 0)], seed=4)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [text[s["start"]:s["end"]] for s in spans if s["source"] == "propagated"] == ["GARCÍA", "Garcia"]
    assert "García" not in out and "GARCÍA" not in out and "Piel rosa. Rosa llama." in out
    surname = spans[0]["replacement"].split()[-1]
    assert spans[2]["replacement"] == surname.upper() and spans[3]["replacement"] == surname


# --------------------------------------------------------------------------
# Values a surrogate cannot handle are redacted, never fail the note (item 7)
# --------------------------------------------------------------------------


def test_odd_dates_are_shifted_or_redacted_never_fail_the_note():
    text = "Visto el 3 de ſeptiembre de 2019, el 5 de ABRİL de 2019, el 31/12/9999 y el 01/01/0001."
    dates = ["3 de ſeptiembre de 2019", "5 de ABRİL de 2019", "31/12/9999", "01/01/0001"]
    assert [m.group() for _, _, m in find_dates(text)] == dates
    assert [date_fields(m)[1] for _, _, m in find_dates(text)] == [9, 4, 12, 1]
    for seed in range(12):
        _, doc = _transform_doc(text, [("FECHAS", d, 0) for d in dates], seed=seed)
        spans = doc._.deid_spans
        assert re.fullmatch(r"3 de septiembre de 2019", text[spans[0]["start"]:spans[0]["end"]].replace("ſ", "s"))
        assert re.fullmatch(r"\d{1,2} de [a-z]+ de \d{4}", spans[0]["replacement"])
        assert re.fullmatch(r"\d{1,2} de [A-Z]+ de \d{4}", spans[1]["replacement"])  # upper case kept
        # One of the two far dates leaves the calendar whichever way the shift goes: redacted.
        fallbacks = [s for s in spans if s.get("fallback")]
        assert fallbacks and all(s["fallback"] == "redact" and s["fallback_reason"] == "OverflowError"
                                 and s["replacement"] == "[FECHAS]" for s in fallbacks)
        assert not any(d in doc._.deidentified for d in dates)
    assert find_dates("00/00/0000") == []  # no day, month nor year 0


def test_a_surrogate_that_holds_its_original_is_redacted():
    """An age 0 has nothing to move, a name of particles has nothing to draw: redacted."""
    text = "Recién nacido, 0 meses. Visto por de la Vega, firma de la."
    _, doc = _transform_doc(text, [("EDAD_SUJETO_ASISTENCIA", "0 meses", 0), ("NOMBRE_PERSONAL_SANITARIO", "de la", 1)])
    assert [(s["replacement"], s.get("fallback_reason")) for s in doc._.deid_spans] == [
        ("[EDAD_SUJETO_ASISTENCIA]", "SurrogateLeak"), *[("[NOMBRE_PERSONAL_SANITARIO]", "SurrogateLeak")] * 2]


# --------------------------------------------------------------------------
# Keyed surrogates (item 9)
# --------------------------------------------------------------------------

KEY = bytes(range(100, 132))


def _keyed(text, ents, key=KEY, group=None, **config):
    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", **config})
    transform.set_key(key)
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(text.index(s), text.index(s) + len(s), label=label) for label, s in ents]
    doc._.deid_group = group
    return {text[s["start"]:s["end"]]: s["replacement"] for s in transform(doc)._.deid_spans}


def test_with_a_key_the_same_real_value_gets_the_same_surrogate_in_every_note():
    a = _keyed("Nota 1: Ana García López vive en Getafe. Alta el 12/03/2019.",
               [("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"), ("TERRITORIO", "Getafe"), ("FECHAS", "12/03/2019")])
    b = _keyed("Otra nota, otro día: GARCÍA; de Getafe. Fue el 14/03/2019, ayer.",
               [("NOMBRE_SUJETO_ASISTENCIA", "GARCÍA"), ("TERRITORIO", "Getafe"), ("FECHAS", "14/03/2019")])
    assert b["Getafe"] == a["Getafe"]
    assert b["GARCÍA"] == a["Ana García López"].split()[1].upper()  # the surname alone, as in the full name
    # Different notes, no group: each its own date shift (as without a key) ...
    c = _keyed("Otra nota, otro día: Fue el 14/03/2019, ayer.", [("FECHAS", "14/03/2019")], group="p1")
    d = _keyed("Nota 1: Alta el 12/03/2019, sin más.", [("FECHAS", "12/03/2019")], group="p1")
    # ... one patient's notes (doc._.deid_group): one shift, so the interval stays.
    moved = [date(*reversed(date_fields(find_dates(x)[0][2]))) for x in (d["12/03/2019"], c["14/03/2019"])]
    assert (moved[1] - moved[0]).days == 2
    # Another key: other surrogates; the key is in no repr, config or serialization.
    other = _keyed("Nota 1: Ana García López vive en Getafe. Alta el 12/03/2019.",
                   [("NOMBRE_SUJETO_ASISTENCIA", "Ana García López"), ("TERRITORIO", "Getafe"), ("FECHAS", "12/03/2019")],
                   key=bytes(range(32)))
    assert other != a


def test_the_key_stays_in_memory_and_reaches_worker_processes(tmp_path):
    import pickle

    nlp = ruler_pipeline("es", PATTERNS_ES, seed=7)
    transform = nlp.get_pipe("deid_transform")
    assert not transform.keyed
    unkeyed = nlp(NOTE_ES)._.deidentified
    transform.set_key(KEY)
    assert transform.keyed
    keyed = nlp(NOTE_ES)._.deidentified
    assert keyed != unkeyed
    hexkey = KEY.hex()
    for shown in (repr(transform), str(transform.__dict__), str(nlp.config), nlp.to_bytes().hex(), str(nlp.meta)):
        assert hexkey not in shown and KEY.hex().upper() not in shown and repr(KEY) not in shown
    nlp.to_disk(tmp_path / "m")
    assert not any(KEY in f.read_bytes() for f in (tmp_path / "m").rglob("*") if f.is_file())
    assert not spacy.load(tmp_path / "m").get_pipe("deid_transform").keyed
    # Pickled (spaCy's n_process > 1 under the spawn start method): the key goes along.
    copy = pickle.loads(pickle.dumps(transform))
    assert copy.keyed and copy(nlp.make_doc(NOTE_ES)) is not None
    transform.set_key(None)
    assert nlp(NOTE_ES)._.deidentified == unkeyed  # without a key: as before, from seed and text
    with pytest.raises(ValueError, match="too short") as err:
        transform.set_key(b"short")
    assert "short" not in str(err.value).replace("too short", "")


def test_load_key(tmp_path, monkeypatch):
    from clinical_deid.keys import load_key

    monkeypatch.delenv("DEID_SURROGATE_KEY", raising=False)
    assert load_key() is None
    (tmp_path / "hex").write_text(KEY.hex() + "\n")
    (tmp_path / "raw").write_bytes(KEY)
    assert load_key(tmp_path / "hex") == KEY == load_key(tmp_path / "raw")
    monkeypatch.setenv("DEID_SURROGATE_KEY", KEY.hex())
    assert load_key() == KEY
    (tmp_path / "short").write_text("abcd1234")
    for bad in ("short", "missing"):
        with pytest.raises(ValueError, match=bad) as err:
            load_key(tmp_path / bad)
        assert "abcd1234" not in str(err.value)
    monkeypatch.setenv("DEID_SURROGATE_KEY", "aaaaaaaaaaaaaaaaaaaaaaaaaa")
    with pytest.raises(ValueError, match="DEID_SURROGATE_KEY"):
        load_key()


def test_a_string_that_a_replacement_completes_again_goes_too():
    """A mention glued to a replaced neighbour ("XǅA:0:") is no word in the input, but is one
    once "Xǅ" becomes a placeholder: its rest is redacted too (found by test_deid_fuzz)."""
    from spacy.tokens import Doc

    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", "mode": "redact"})
    doc = Doc(nlp.vocab, words=["Ver", "A:0:", "y", "Xǅ", "A:0:", "."], spaces=[True, True, True, False, False, False])
    doc.ents = [Span(doc, 1, 2, label="ID_SUJETO_ASISTENCIA"), Span(doc, 3, 4, label="NOMBRE_SUJETO_ASISTENCIA")]
    doc = transform(doc)
    assert doc._.deidentified == "Ver [ID_SUJETO_ASISTENCIA] y [NOMBRE_SUJETO_ASISTENCIA][ID_SUJETO_ASISTENCIA]."
    assert doc._.deid_spans[-1]["fallback_reason"] == "Coincidence"


def test_an_id_span_over_prose_is_redacted_not_passed_through():
    """A model's ID span run over a sentence ("raza caucásica de 21 años ..."): an ID keeps its
    letter prefixes ("NHC") and draws its digits, so the words would pass through unchanged.
    Words are no prefix: the span is redacted instead. A real ID keeps its prefix."""
    text = "NHC 7984385. Paciente de raza caucásica de 21 años de edad que es remitido."
    prose = "raza caucásica de 21 años de edad que es remitido"
    nlp = ruler_pipeline("es", [("ID_SUJETO_ASISTENCIA", "NHC 7984385"), ("ID_SUJETO_ASISTENCIA", prose)],
                         rules=False)
    nlp.get_pipe("deid_transform").set_key(bytes(range(32)))
    doc = nlp(text)
    by_start = {s["start"]: s for s in doc._.deid_spans}
    prose_span = by_start[text.index(prose)]
    assert prose_span["replacement"] == "[ID_SUJETO_ASISTENCIA]" and prose_span["fallback_reason"] == "NotAnId"
    id_span = by_start[0]
    assert id_span["replacement"].startswith("NHC ") and id_span["replacement"] != "NHC 7984385"
    assert "caucásica" not in doc._.deidentified
