"""Swedish demo notes (Stockholm EPR PHI labels): one patient drawn, then the header and the slots.

First and last names are separate spans; Age is the number only ("67" in "67 år");
day+month+year is Full_Date, anything less (a day and a month, a month and a year, a year)
is Date_Part. That label set has no identifier class, so the notes hold no personnummer at
all (writing one unannotated would teach a model to leave it in place).
Word lists and templates: `sv.json`.
"""
from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Dict, List, Optional, Tuple

from faker import Faker

from deid_synthesis.corpus.demo.values import (
    Segment,
    fill_pattern,
    language_data,
    pick_header_fields,
    random_date,
    relatives_for_age,
    render_template,
)

DATA = language_data("sv")
FIRST, LAST = "First_Name", "Last_Name"


def genitive(name: str) -> str:
    """Swedish genitive: "Lund" -> "Lunds", "Borås" stays."""
    return name if name[-1] in "sxzSXZ" else name + "s"


def care_unit(fake: Faker, rng: random.Random) -> str:
    """A health-care unit from the data's patterns ("Lidköpings lasarett", "avdelning 12")."""
    city = fake.city()
    return fill_pattern(rng.choice(DATA["unit_patterns"]), {
        "city": lambda: city,
        "city_genitive": lambda: genitive(city),
        # "Lundsjukhuset" only for a one-word city name.
        "city_sjukhuset": lambda: f"{city}sjukhuset" if " " not in city else f"{genitive(city)} sjukhus",
        "ward_number": lambda: str(rng.randint(1, 99)),
        "clinic": lambda: rng.choice(DATA["clinics"]),
    })


def phone(fake: Faker, rng: random.Random) -> str:
    """A Faker phone number, or an area code and seven digits as Swedish notes write them."""
    if rng.random() < 0.5:
        return fake.phone_number()
    prefix = rng.choice(DATA["phone_prefixes"])
    digits = "".join(str(rng.randint(0, 9)) for _ in range(7))
    return rng.choice([
        f"{prefix}-{digits[:3]} {digits[3:5]} {digits[5:]}",
        f"{prefix}-{digits}",
        f"{prefix} {digits[:3]} {digits[3:5]} {digits[5:]}",
    ])


def full_date(rng: random.Random, day: date) -> str:
    """Day, month and year ("2019-05-03", "3 maj 2019", "3/5 2019", "190503")."""
    style = rng.choice(["iso", "iso", "long", "long", "slash", "compact"])
    if style == "iso":
        return day.isoformat()
    if style == "long":
        return f"{day.day} {DATA['months'][day.month - 1]} {day.year}"
    if style == "slash":
        return f"{day.day}/{day.month} {day.year}"
    return day.strftime("%y%m%d")


def date_part(rng: random.Random, day: date) -> str:
    """Day and month only ("3/5", "3 maj")."""
    style = rng.choice(["dm", "dm", "long_dm", "long_dm"])
    if style == "dm":
        return f"{day.day}/{day.month}"
    return f"{day.day} {DATA['months'][day.month - 1]}"


# Long: one literal per slot, in the order the values are drawn from the seeded generators;
# that order fixes the corpus for a seed, so it is kept in one place rather than split.
def context(fake: Faker, rng: random.Random) -> Dict[str, List[Segment]]:
    """Draw one Swedish patient and every slot the templates may mention.

    fake (Faker): the sv_SE Faker of the split, seeded.
    rng (random.Random): the split's generator.
    RETURNS (Dict[str, List[Segment]]): the segments of each template slot.
    """
    female = rng.random() < 0.5
    first = fake.first_name_female() if female else fake.first_name_male()
    last = fake.last_name()
    age = rng.randint(18, 95)
    admitted = random_date(rng, date(2008, 1, 1), date(2023, 12, 31))
    onset = admitted - timedelta(days=rng.randint(2, 25))
    long_ago = random_date(rng, admitted - timedelta(days=365 * min(age, 20)), admitted - timedelta(days=200))
    discharged = admitted + timedelta(days=rng.randint(1, 14))
    follow_up = discharged + timedelta(days=rng.randint(14, 120))

    def person(female_person: Optional[bool] = None) -> Tuple[str, str]:
        female_person = rng.random() < 0.5 if female_person is None else female_person
        return (fake.first_name_female() if female_person else fake.first_name_male()), fake.last_name()

    doctor_first, doctor_last = person()
    doctor2_first, doctor2_last = person()
    relation = rng.choice(relatives_for_age(DATA, age))
    gender = DATA["relatives"][relation]
    relative_first, relative_last = person(None if gender == "x" else gender == "f")
    if relation in DATA["same_surname_relatives"] and rng.random() < 0.6:
        relative_last = last  # children and siblings often share the surname
    city, city2 = fake.city(), fake.city()
    country = rng.choice(DATA["frequent_countries"]) if rng.random() < 0.7 else fake.country()

    return {
        "pat": [(first, FIRST), (" ", None), (last, LAST)],
        "pat_f": [(first, FIRST)],
        "pat_l": [(last, LAST)],
        "age": [(str(age), "Age")],
        "kvinna": [("kvinna" if female else "man", None)],
        "hon": [("hon" if female else "han", None)],
        "Hon": [("Hon" if female else "Han", None)],
        "inskr_full": [(full_date(rng, admitted), "Full_Date")],
        "inskr_full2": [(full_date(rng, admitted), "Full_Date")],
        "inskr_part": [(date_part(rng, admitted), "Date_Part")],
        "debut_part": [(date_part(rng, onset), "Date_Part")],
        "debut_full": [(full_date(rng, onset), "Full_Date")],
        "utskr_full": [(full_date(rng, discharged), "Full_Date")],
        "utskr_part": [(date_part(rng, discharged), "Date_Part")],
        "kontroll_full": [(full_date(rng, follow_up), "Full_Date")],
        "kontroll_part": [(date_part(rng, follow_up), "Date_Part")],
        "antigen_year": [(str(long_ago.year), "Date_Part")],
        "antigen_month": [(f"{DATA['months'][long_ago.month - 1]} {long_ago.year}", "Date_Part")],
        "unit": [(care_unit(fake, rng), "Health_Care_Unit")],
        "unit2": [(care_unit(fake, rng), "Health_Care_Unit")],
        "unit3": [(f"Vårdcentralen {fake.city()}" if rng.random() < 0.5 else f"{fake.city()} vårdcentral",
                   "Health_Care_Unit")],
        "doc": [(doctor_first, FIRST), (" ", None), (doctor_last, LAST)],
        "doc_l": [("dr ", None), (doctor_last, LAST)],
        "doc2": [(doctor2_first, FIRST), (" ", None), (doctor2_last, LAST)],
        "rel": [(relation, None)],
        "rel_f": [(relative_first, FIRST)],
        "rel_full": [(relative_first, FIRST), (" ", None), (relative_last, LAST)],
        "phone": [(phone(fake, rng), "Phone_Number")],
        "phone2": [(phone(fake, rng), "Phone_Number")],
        "street": [(f"{fake.street_name()} {fake.building_number()}", "Location")],
        "city": [(city, "Location")],
        "city2": [(city2, "Location")],
        "country": [(country, "Location")],
    }


def header(slots: Dict[str, List[Segment]], rng: random.Random) -> List[Segment]:
    """A note's header: a title, "Field: value" lines (the patient first), maybe a section.

    slots (Dict[str, List[Segment]]): the patient's slots (`context`).
    rng (random.Random): the split's generator.
    RETURNS (List[Segment]): the header's segments.
    """
    core, optional = pick_header_fields(DATA["header_fields"], DATA["header_core"])
    rng.shuffle(optional)
    fields = core + optional[: rng.randint(2, len(optional))]
    rest = fields[1:]
    rng.shuffle(rest)
    fields = fields[:1] + rest
    out: List[Segment] = [(rng.choice(DATA["titles"]) + "\n", None)]
    for label, template in fields:
        out.append((f"{label}: ", None))
        out.extend(render_template(template, slots))
        out.append(("\n", None))
    section = rng.choice(DATA["sections"])
    if section:
        out.append((section + "\n", None))
    return out
