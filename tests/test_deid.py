"""deid_transform in a pipeline: offsets, consistency, seeds, modes, label sets, what
has no surrogate, and values a surrogate cannot handle (redacted, never failing the note).

Pipelines are spacy.blank + an entity_ruler that plays the NER model, saved and loaded back
with spacy.load, as a trained pipeline would be (tests/deid_pipelines.py).
"""
import re
from datetime import date

import pytest
import spacy

from clinical_deid.dates import date_fields, find_dates
from clinical_deid.labels import PRESETS
from clinical_deid.locale_data import locale_data
from tests.deid_pipelines import NOTE_ES, PATTERNS_ES, TOKENIZER, ruler_pipeline, spans_by_text, transform_doc


@pytest.fixture(scope="module")
def nlp_es(tmp_path_factory):
    path = tmp_path_factory.mktemp("es") / "model"
    ruler_pipeline("es", PATTERNS_ES, seed=7).to_disk(path)
    return spacy.load(path)


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


def test_odd_dates_are_shifted_or_redacted_never_fail_the_note():
    text = "Visto el 3 de ſeptiembre de 2019, el 5 de ABRİL de 2019, el 31/12/9999 y el 01/01/0001."
    dates = ["3 de ſeptiembre de 2019", "5 de ABRİL de 2019", "31/12/9999", "01/01/0001"]
    assert [m.group() for _, _, m in find_dates(text)] == dates
    assert [date_fields(m)[1] for _, _, m in find_dates(text)] == [9, 4, 12, 1]
    for seed in range(12):
        _, doc = transform_doc(text, [("FECHAS", d, 0) for d in dates], seed=seed)
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
    _, doc = transform_doc(text, [("EDAD_SUJETO_ASISTENCIA", "0 meses", 0), ("NOMBRE_PERSONAL_SANITARIO", "de la", 1)])
    assert [(s["replacement"], s.get("fallback_reason")) for s in doc._.deid_spans] == [
        ("[EDAD_SUJETO_ASISTENCIA]", "SurrogateLeak"), *[("[NOMBRE_PERSONAL_SANITARIO]", "SurrogateLeak")] * 2]


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
