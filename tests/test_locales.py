"""Surrogates and rules beyond Spanish and Swedish (issue 12 item 3): dates re-rendered in the
original's exact form in any language (Babel's CLDR month names, padding per field), national
ID numbers by country (python-stdnum) and phone numbers by region (phonenumbers)."""
import random
import re
from datetime import timedelta

import pytest
import spacy

from clinical_deid.dates import date_fields, find_dates, shift_match
from clinical_deid.locale_data import locale_data
from clinical_deid.rules import find_structured_phi
from clinical_deid.surrogates import Surrogates
from tests.deid_pipelines import TOKENIZER


def _moved(text, lang, days):
    return [shift_match(m, timedelta(days=days)) for _, _, m in find_dates(text, lang)]


@pytest.mark.parametrize("lang,text,days,expected", [
    # month names from CLDR, in the original's language, width and case
    ("de", "3. März 2019", 40, ["12. April 2019"]),
    ("de", "am 3. März", 40, ["12. April"]),
    ("de", "Jan. 2019", 40, ["Feb. 2019"]),
    ("fi", "3. maaliskuuta 2019", 40, ["12. huhtikuuta 2019"]),
    ("no", "3. MARS 2019", -40, ["22. JANUAR 2019"]),
    ("fr", "3 janv. 2019", 40, ["12 févr. 2019"]),
    ("en", "March 3, 2019", 40, ["April 12, 2019"]),
    # padding kept per field: dd.mm.yyyy stays so for days and months of 10 and more
    ("de", "12.10.2019", 40, ["21.11.2019"]),
    ("de", "12.10.2019", -40, ["02.09.2019"]),
    ("de", "12.3.2019", -38, ["2.2.2019"]),
    ("es", "12 de marzo del 2019", -38, ["2 de febrero del 2019"]),
    # month and two-digit year; month first where day first is no date
    ("en", "7/19", 40, ["8/19"]),
    ("en", "07/19/2019", 40, ["08/28/2019"]),
])
def test_dates_keep_their_form(lang, text, days, expected):
    assert _moved(text, lang, days) == expected


def test_month_names_of_the_pipeline_language_only():
    assert find_dates("3. März 2019") != [] and date_fields(find_dates("3. März 2019", "de")[0][2]) == (3, 3, 2019)
    # without German, "März" is no month: only the year is a date
    assert [m.group() for _, _, m in find_dates("3. März 2019")] == ["2019"]
    assert find_dates("31/02/2019", "de") == []  # still no date, in any reading


def test_date_operator_in_german():
    surrogates = Surrogates(locale_data("de_DE"), random.Random(0), [("date", "3. März 2019")], 365, 2)
    moved = surrogates.get("date", "3. März 2019")
    assert moved != "3. März 2019"
    assert len(find_dates(moved, "de")) == 1 and find_dates(moved, "de")[0][2].group() == moved


@pytest.mark.parametrize("locale,original,module", [
    ("no_NO", "15076500565", "no.fodselsnummer"),
    ("da_DK", "211062-5629", "dk.cpr"),
    ("fi_FI", "131052-308T", "fi.hetu"),
    ("de_DE", "36574261809", "de.idnr"),
    ("fr_FR", "2 95 10 99 126 111 93", "fr.nir"),
    ("it_IT", "RCCMNL83S18D969H", "it.codicefiscale"),
    ("pt_PT", "00000000 0 ZZ4", "pt.cc"),
])
def test_national_ids_valid_in_the_same_format(locale, original, module):
    import importlib
    validator = importlib.import_module("stdnum." + module)
    shape = lambda text: "".join("9" if c.isdigit() else "A" if c.isalpha() else c for c in text)  # noqa: E731
    for seed in range(20):
        new = Surrogates(locale_data(locale), random.Random(seed), [], 365, 2).get("id_generic", original)
        assert new != original and validator.is_valid(new) and shape(new)[:-1] == shape(original)[:-1], new  # the check character may be a digit or a letter


def test_birth_date_of_a_fodselsnummer_moves_with_the_document():
    surrogates = Surrogates(locale_data("no_NO"), random.Random(3), [("date", "15.07.1965")], 365, 2)
    new = surrogates.get("id_generic", "15076500565")
    moved = surrogates.get("date", "15.07.1965")
    assert new[:4] == moved[:2] + moved[3:5] and new[4:6] == moved[-2:]


def test_other_countries_ids_stay_generic_in_spain():
    # a valid fødselsnummer in a Spanish pipeline is just an ID: its digits are drawn
    new = Surrogates(locale_data("es_ES"), random.Random(0), [], 365, 2).get("id_generic", "15076500565")
    assert len(new) == 11 and new.isdigit() and new != "15076500565"


@pytest.mark.parametrize("locale,original", [
    ("de_DE", "0221/1234567"), ("de_DE", "(0221) 12 34 56"), ("de_DE", "0151 23456789"),
    ("de_DE", "+49 30 12345678"), ("no_NO", "412 34 567"), ("no_NO", "+47 22 33 44 55"),
    ("es_ES", "612 345 678"), ("sv_SE", "070-123 45 67"),
])
def test_phone_surrogates_valid_same_type_same_format(locale, original):
    import phonenumbers
    from clinical_deid.phones import phone_number
    data = locale_data(locale)
    kind = phonenumbers.number_type(phone_number(original, data.country))
    shape = lambda text: re.sub(r"\d", "9", text)  # noqa: E731
    for seed in range(20):
        new = Surrogates(data, random.Random(seed), [], 365, 2).get("phone", original)
        number = phone_number(new, data.country)
        assert number is not None and phonenumbers.number_type(number) == kind, new
        assert shape(new) == shape(original) and new != original


def test_phone_rule_with_phonenumbers_for_the_pipeline_country():
    text = "Tel. 0221/1234567 oder +49 30 12345678, mobil 0151 23456789. Geb. 12.03.2019, ID: 632632225."
    found = [text[s:e] for s, e, _ in find_structured_phi(text, ["PHONE"], phone_finder="phonenumbers", region="DE")]
    assert found == ["0221/1234567", "+49 30 12345678", "0151 23456789"]
    # the regex rules know Spanish and Swedish formats only: not the German area-code slash
    assert "0221/1234567" not in [text[s:e] for s, e, _ in find_structured_phi(text, ["PHONE"])]
    # "auto" (the default): phonenumbers for German, the measured patterns for Spanish and Swedish
    nlp = spacy.blank("de")
    assert nlp.add_pipe("deid_rules").phone_finder == "phonenumbers"
    assert [(e.text, e.label_) for e in nlp("Tel. 0221/1234567").ents] == [("0221/1234567", "PHONE")]
    assert spacy.blank("es").add_pipe("deid_rules").phone_finder == "regex"
    with pytest.raises(ValueError, match="unknown phone_finder 'libphone'"):
        nlp.add_pipe("deid_rules", name="other", config={"phone_finder": "libphone"})


def test_national_id_rule_for_the_pipeline_country():
    text = "Pas. fnr 15076500565, tlf 412 34 567; ikke 15076500566."
    found = [(text[s:e], rule) for s, e, rule in find_structured_phi(text, ["NATIONAL_ID", "PHONE"], region="NO",
                                                                     phone_finder="phonenumbers")]
    assert found == [("15076500565", "NATIONAL_ID"), ("412 34 567", "PHONE")]
    assert find_structured_phi(text, ["NATIONAL_ID"], region="ES") == []  # Spain: DNI and NIE rules
    nlp = spacy.blank("nb")
    nlp.add_pipe("deid_rules")
    assert [(e.text, e.label_) for e in nlp(text).ents] == [("15076500565", "NATIONAL_ID"), ("412 34 567", "PHONE")]
    # the fødselsnummer's surrogate is a valid one
    from stdnum.no import fodselsnummer
    new = Surrogates(locale_data("no_NO"), random.Random(0), [], 365, 2).get("id_generic", "15076500565")
    assert fodselsnummer.is_valid(new)


def test_german_note_end_to_end():
    """A label set of its own in German: rules find the phone, dates keep their form, the
    phone and the ID come out valid, nothing original stays."""
    import phonenumbers
    from stdnum.de import idnr
    from tests.deid_pipelines import ruler_pipeline
    from clinical_deid.phones import phone_number
    note = ("Patient Hans Müller, geb. 03.02.1961, aufgenommen am 3. März 2019, entlassen am 12.10.2019. "
            "Steuer-ID 36574261809. Tel. 0221/1234567.")
    nlp = ruler_pipeline("de", [("NAME_PATIENT", "Hans Müller"), ("DATE", "03.02.1961"), ("DATE", "3. März 2019"),
                                ("DATE", "12.10.2019"), ("ID", "36574261809")],
                         mode="pseudonymize", seed=1)
    doc = nlp(note)
    new = {record["label"]: [] for record in doc._.deid_spans}
    for record in doc._.deid_spans:
        new[record["label"]].append(record["replacement"])
    dates = new["DATE"]
    assert [d[2] + d[5] for d in (dates[0], dates[2])] == ["..", ".."] and len(dates[0]) == 10
    assert re.fullmatch(r"\d{1,2}\. (Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November"
                        r"|Dezember) 2019", dates[1]), dates[1]
    assert idnr.is_valid(new["ID"][0])
    phone = new["PHONE"][0]
    assert re.fullmatch(r"0\d{3}/\d{7}", phone) and phonenumbers.is_valid_number(phone_number(phone, "DE"))
    for original in ("Müller", "03.02.1961", "3. März 2019", "12.10.2019", "36574261809", "0221/1234567"):
        assert original not in doc._.deidentified


def test_a_date_span_without_a_date_becomes_a_local_date():
    drawn = {locale: Surrogates(locale_data(locale), random.Random(0), [], 365, 2).get("date", "gestern")
             for locale in ("de_DE", "en_US", "sv_SE", "es_ES")}
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4}", drawn["de_DE"]) and re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", drawn["en_US"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", drawn["sv_SE"]) and re.fullmatch(r"\d\d/\d\d/\d{4}", drawn["es_ES"])


def test_date_rule_finds_dates_with_month_names_of_the_pipeline_language():
    text = "Aufnahme am 3. März 2019, Kontrolle im Mai 2019; wieder am 3. März. Labor 12.10.2019."
    dates = lambda **kw: [text[s:e] for s, e, _ in find_structured_phi(text, ["DATE"], **kw)]  # noqa: E731
    assert dates(lang="de") == ["3. März 2019", "Mai 2019", "12.10.2019"]  # a month name needs a year
    assert dates(lang="es") == dates() == ["12.10.2019"]  # no German month names: numeric dates only
    nlp = spacy.blank("de", config=TOKENIZER)
    nlp.add_pipe("deid_rules")
    assert [e.text for e in nlp(text).ents] == ["3. März 2019", "Mai 2019", "12.10.2019"]
    nlp.get_pipe("deid_rules").written_dates = False
    assert [e.text for e in nlp(text).ents] == ["12.10.2019"]


def test_numbers_after_an_id_label_are_no_phones_in_other_languages():
    text = "Fallnummer: 030 1234567. Tel.: 030 1234567"
    found = [text[s:e] for s, e, _ in find_structured_phi(text, ["PHONE"], phone_finder="phonenumbers", region="DE")]
    assert found == ["030 1234567"] and find_structured_phi(text, ["PHONE"], phone_finder="phonenumbers",
                                                            region="DE")[0][0] == text.rindex("030")


def test_german_note_gets_german_hospital_street_and_company():
    """With lang/de.json a German pipeline's hospital comes out in a German form (not
    "Greifswald Hospital"), its street as a German street, a company without its legal form
    and "Ihre Tochter" as kinship words; nothing original stays."""
    from tests.deid_pipelines import ruler_pipeline
    note = ("Frau Anna Schmidt wurde im Marienhospital Heiligenstadt aufgenommen. Wohnhaft Berliner Straße 5, "
            "arbeitet bei Müller GmbH & Co. KG. Ihre Tochter begleitet sie.")
    patterns = [("HOSPITAL", "Marienhospital Heiligenstadt"), ("STREET", "Berliner Straße 5"),
                ("ORGANIZATION", "Müller GmbH & Co. KG"), ("NAME_PATIENT", "Anna Schmidt"),
                ("NAME_RELATIVE", "Ihre Tochter")]
    for seed in range(5):
        doc = ruler_pipeline("de", patterns, mode="pseudonymize", seed=seed)(note)
        new = {record["label"]: record["replacement"] for record in doc._.deid_spans}
        assert re.fullmatch(r"(St\.-Marien-Krankenhaus|Klinikum|Krankenhaus|Universitätsklinikum|Kreiskrankenhaus"
                            r"|Städtisches Klinikum) \S.*", new["HOSPITAL"]), new["HOSPITAL"]
        assert "Hospital" not in new["HOSPITAL"] and "Heiligenstadt" not in new["HOSPITAL"]
        assert re.fullmatch(r"\S+(straße|str\.|weg|allee|platz|gasse|ring|Straße|Weg|Allee|Platz|Gasse|Ring) \d+",
                            new["STREET"], re.IGNORECASE), new["STREET"]
        assert not re.search(r"\b(GmbH|AG|KG|KGaA|OHG|GbR|e\.[VG]\.)$", new["ORGANIZATION"]), new["ORGANIZATION"]
        assert new["NAME_RELATIVE"] == "[NAME_RELATIVE]"  # German kinship words name no one
        for original in ("Heiligenstadt", "Berliner", "Müller", "Schmidt"):
            assert original not in doc._.deidentified


def test_german_words_are_known_but_its_months_only_in_german():
    from clinical_deid.lang import LANGUAGES, WORD_LANGUAGES, load
    from clinical_deid.vocabulary import AGE_UNITS, COMPANY_SUFFIX, NOT_NAMES, RELATIONS
    assert "de" in WORD_LANGUAGES and "de" not in LANGUAGES and load("de")["top_level_domain"] == "de"
    assert {"ehefrau", "tochter", "ihre"} <= RELATIONS and {"jahre", "wochen"} <= AGE_UNITS
    assert {"herr", "frau", "zu"} <= NOT_NAMES
    assert [COMPANY_SUFFIX.sub("", c) for c in ("Kranz OHG mbH", "Löchel Stiftung & Co. KGaA", "Rädel e.V.",
                                                 "Nunez S.L.")] == ["Kranz", "Löchel", "Rädel", "Nunez"]
    assert [m.group() for _, _, m in find_dates("im Mai 2019")] == ["2019"]  # no German months outside German


def test_german_titles_leave_swedish_sentences_alone():
    from clinical_deid.scoring import count_full_stops
    # "med" is no title: a Swedish sentence ending "... med." still counts; "Priv.-Doz." ends none
    assert count_full_stops("Hjälp av den person du lever med. Hon kom.") == 2
    assert count_full_stops("Befund von Priv.-Doz. Dr. Schmidt.") == 1
