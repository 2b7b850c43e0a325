"""Surrogates and rules beyond Spanish and Swedish (issue 12 item 3): dates re-rendered in the
original's exact form in any language (Babel's CLDR month names, padding per field), national
ID numbers by country (python-stdnum) and phone numbers by region (phonenumbers)."""
import random
from datetime import timedelta

import pytest

from clinical_deid.dates import date_fields, find_dates, shift_match
from clinical_deid.locale_data import locale_data
from clinical_deid.surrogates import Surrogates


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
