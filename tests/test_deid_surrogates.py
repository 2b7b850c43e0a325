"""The surrogate operators and the document state they share (clinical_deid.surrogates,
clinical_deid.operators): valid IDs, dates and their formats, street forms, and the leak
check that keeps every original out of a surrogate."""
import random
import re

import pytest

from clinical_deid.dates import find_dates
from clinical_deid.labels import KINDS
from clinical_deid.locale_data import LocaleData, locale_data
from clinical_deid.lang import load as load_language, union
from clinical_deid.operators import NotAnId, get_operator, operator_names
from clinical_deid.rules import is_valid_dni, is_valid_personnummer
from clinical_deid.surrogates import Surrogates
from tests.deid_pipelines import ruler_pipeline


def test_find_dates_formats():
    found = lambda text: [(m.group(), ) for _, _, m in find_dates(text)]  # noqa: E731
    assert found("el 12-03-2019 y 2019-03-14") == [("12-03-2019",), ("2019-03-14",)]
    assert found("3 maj 2018") == [("3 maj 2018",)]
    assert found("30/1 2013 och 3/5-18") == [("30/1 2013",), ("3/5-18",)]
    assert found("12 de marzo del 2019") == [("12 de marzo del 2019",)]
    assert found("31/02/2019") == []  # not a date: a surrogate date replaces it
    assert found("en 2015") == [("2015",)]


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


def test_word_runs_and_strings_to_avoid():
    from clinical_deid.folding import word_runs

    assert list(word_runs("Ana  García, 45")) == ["Ana", "Ana García", "Ana García, 45", "García", "García, 45", "45"]
    surrogates = Surrogates(locale_data("es_ES"), random.Random(0), [], 365, 2, avoid_strings={"garcía", "12/03/2019"})
    assert surrogates.leaks("Ana García López") and surrogates.leaks("el 12/03/2019")
    assert not surrogates.leaks("Ana Garcías") and not surrogates.leaks("112/03/2019")


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


def test_every_kind_with_a_surrogate_has_its_operator():
    settled = {"relative", "redact", "mask"}  # DeidTransform settles these before drawing
    assert set(operator_names()) == set(KINDS) - settled
    assert all(get_operator(name).name == name for name in operator_names())
    with pytest.raises(KeyError, match="nickname"):
        get_operator("nickname")
    # validate draws nothing and refuses what no surrogate can replace: words in an ID span.
    with pytest.raises(NotAnId):
        get_operator("id_generic").validate("raza caucásica de 21 años")
    get_operator("id_generic").validate("NHC 7984385")


def test_language_data_is_data_per_language():
    assert {"madre", "mor", "mother"} <= union("relations")  # kinship words of any language
    assert load_language("es")["months"][3] == "abril" and load_language("sv")["months"][4] == "maj"
    assert load_language("zz") == {}  # no data: Faker's locale and the defaults only
    assert locale_data("sv_SE").tld == "se" and "sjukhuset" in locale_data("sv_SE").generic_words
