"""Dates and ages: moved, not drawn anew, so a note's intervals and a patient's age
stay plausible.

A date moves by the document's one offset (`Surrogates.shift`) in the format it was written
in; an age moves by the document's one small delta (`Surrogates.age_delta`); ages over 89
stay in the one group HIPAA allows.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import TYPE_CHECKING

from babel import UnknownLocaleError
from babel.dates import format_date, get_date_format

from ..dates import find_dates, shift_match
from .base import Operator

if TYPE_CHECKING:
    from ..surrogates import Surrogates


def local_date(day: date, lang: str) -> str:
    """`day` in the short numeric form of `lang` (CLDR, with a four-digit year: "03.04.2011"
    in German, "4/3/2011" in English); ISO 8601 for a language Babel does not know.

    day (date): The date. lang (str): The pipeline's language.
    RETURNS (str): The date as that language writes it.
    """
    try:
        pattern = get_date_format("short", locale=lang).pattern
    except (UnknownLocaleError, ValueError, TypeError):
        return day.isoformat()
    return format_date(day, re.sub(r"y+", "yyyy", pattern), locale=lang)


class Date(Operator):
    """Every date found in the span moved by the document's shift; a span with no date in
    it ("ayer", "Semana Santa") becomes a drawn date in the language's short form."""

    name = "date"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        found = find_dates(text, surrogates.data.lang)
        lang = surrogates.data.lang
        if not found:
            new = date(2000, 1, 1) + timedelta(days=surrogates.rng.randint(0, 20 * 365))
            return f"{new.day:02d}/{new.month:02d}/{new.year}" if lang == "es" else local_date(new, lang)
        out, pos = [], 0
        for start, end, m in found:
            out.append(text[pos:start])
            out.append(shift_match(m, surrogates.shift))
            pos = end
        out.append(text[pos:])
        return "".join(out)


def move_age(text: str, delta: int) -> str:
    """Every number of `text` moved by `delta`, kept between 1 and 89 (the other way if it
    would leave that range); 0 stays; 90 and over stay in 90-99.

    text (str): The age as written ("45 años"). delta (int): The document's age delta.
    RETURNS (str): The moved age.
    """
    def move(m: re.Match) -> str:
        n = int(m.group())
        if n >= 90:  # HIPAA: ages over 89 are one group; any age of that group will do
            return str(90 + (n - 90 + abs(delta)) % 10)
        if n == 0:
            return m.group()
        new = n + delta
        if not 1 <= new <= 89:
            new = n - delta
        return str(max(new, 1))

    return re.sub(r"\d+", move, text)


class Age(Operator):
    """An age moved by the document's delta; an age without digits becomes a drawn one."""

    name = "age"

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        if not re.search(r"\d", text):
            return surrogates.fresh(lambda: str(surrogates.rng.randint(20, 85)))
        return move_age(text, surrogates.age_delta)  # drawn once per document, at first use
