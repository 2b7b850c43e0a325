"""German demo notes (a label set of its own): one patient drawn, then the header and the slots.

The labels follow no reference corpus on purpose: NAME_PATIENT, NAME_DOCTOR, LOCATION_CITY,
CONTACT_PHONE, ID_INSURANCE ... (`de.json`), so that a de-identifier must infer its label map
from the names. Names are one span ("Hans Müller"), titles ("Dr. med.", "Frau", "Herrn") stay
outside; AGE is the number only ("67" in "67 Jahre", "67-jährige"); the street line, postcode
and city are three spans. Dates come in German forms ("03.04.2019", "3.4.2019", "3. April
2019", "03.04.19", "12.3.", "12. März", "März 2019"); phone numbers in German forms
("0221/1234567", "+49 30 12345678", "(0221) 1234567", "0171 2345678", a clinic's "0221/478-0"),
with area codes and subscriber lengths that `phonenumbers` accepts. Insurance numbers
(Krankenversichertennummer) are a letter, eight digits and the check digit of their scheme.
Word lists and templates: `de.json`.
"""
from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Dict, List, Tuple

from faker import Faker

from deid_synthesis.corpus.demo.values import (
    Segment,
    ascii_letters,
    fill_pattern,
    language_data,
    pick_header_fields,
    random_date,
    relatives_for_age,
    render_template,
    short_job,
)

DATA = language_data("de")
PATIENT, DOCTOR, RELATIVE = "NAME_PATIENT", "NAME_DOCTOR", "NAME_RELATIVE"
# Umlauts as German e-mail addresses write them ("Müller" -> "mueller").
UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def full_date(rng: random.Random, day: date, birth: bool = False) -> str:
    """Day, month and year ("03.04.2019", "3.4.2019", "3. April 2019", "03.04.19")."""
    styles = ["padded", "padded", "long"] if birth else ["padded", "padded", "padded", "plain", "long", "long", "short"]
    style = rng.choice(styles)
    if style == "padded":
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    if style == "plain":
        return f"{day.day}.{day.month}.{day.year}"
    if style == "long":
        return f"{day.day}. {DATA['months'][day.month - 1]} {day.year}"
    return f"{day.day:02d}.{day.month:02d}.{day.year % 100:02d}"


def day_month(rng: random.Random, day: date) -> str:
    """Day and month only ("12.3.", "12.03.", "12. März"); never at a sentence's end."""
    style = rng.choice(["plain", "plain", "padded", "long"])
    if style == "plain":
        return f"{day.day}.{day.month}."
    if style == "padded":
        return f"{day.day:02d}.{day.month:02d}."
    return f"{day.day}. {DATA['months'][day.month - 1]}"


def digits(rng: random.Random, n: int, first: str = "123456789") -> str:
    """N random digits, the first one drawn from FIRST."""
    return rng.choice(first) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def phone(rng: random.Random) -> str:
    """A landline or mobile number as German notes write it ("0221/1234567", "+49 30 12345678")."""
    if rng.random() < 0.4:
        prefix = rng.choice(sorted(DATA["mobile_prefixes"]))
        subscriber = digits(rng, DATA["mobile_prefixes"][prefix])
        return rng.choice([f"{prefix} {subscriber}", f"{prefix}/{subscriber}", f"+49 {prefix[1:]} {subscriber}"])
    area = rng.choice(DATA["area_codes"])
    subscriber = digits(rng, 11 - len(area), "23456789")
    return rng.choice([f"{area}/{subscriber}", f"{area}/{subscriber}", f"{area} {subscriber}",
                       f"{area}-{subscriber}", f"({area}) {subscriber}", f"+49 {area[1:]} {subscriber}",
                       f"+49 (0){area[1:]} {subscriber}"])


def clinic_numbers(rng: random.Random) -> Tuple[str, str]:
    """A clinic's switchboard and fax: one area code and base number, two extensions."""
    area = rng.choice(DATA["area_codes"])
    base = digits(rng, 3 if len(area) > 3 else 4, "23456789")
    separator = rng.choice(["/", " "])
    return f"{area}{separator}{base}-0", f"{area}{separator}{base}-{digits(rng, rng.randint(2, 4))}"


def insurance_number(rng: random.Random) -> str:
    """A Krankenversichertennummer ("A123456780"): a letter, eight digits, a check digit.

    The check digit: the letter as its two-digit place in the alphabet, then the eight digits;
    weights 1, 2, 1, 2 ...; the digit sums of the products added up, modulo 10.
    """
    letter = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    body = digits(rng, 8)
    products = [int(c) * (1 + i % 2) for i, c in enumerate(f"{ord(letter) - 64:02d}{body}")]
    return f"{letter}{body}{sum(p // 10 + p % 10 for p in products) % 10}"


def hospital(fake: Faker, rng: random.Random) -> str:
    """A hospital name from the data's patterns ("Klinikum Paderborn", "St.-Marien-Hospital Kulmbach")."""
    city = fake.city()
    return fill_pattern(rng.choice(DATA["hospital_patterns"]),
                        {"city": lambda: city, "saint": lambda: rng.choice(DATA["saints"])})


def employer(fake: Faker) -> str:
    """A Faker company without "& Co. KG", "OHG", "e.V." and the like ("Krause Karz GmbH")."""
    name = re.sub(r"\s*&.*$", "", fake.company())
    return re.sub(r"\s+(KG|KGaA|GbR|OHG( mbH)?|e\.[GV]\.)$", "", name).strip()


def email(fake: Faker, rng: random.Random, first: str, last: str) -> str:
    """A free e-mail address, or one made of the patient's name ("hans.mueller@web.de")."""
    if rng.random() < 0.5:
        return fake.free_email()
    first, last = (ascii_letters(name.lower().translate(UMLAUTS)) for name in (first, last))
    user = rng.choice([f"{first}.{last}", f"{first[:1]}{last}", f"{last}{rng.randint(1, 99)}"])
    return f"{user}@{fake.free_email_domain()}"


def clinic_email(rng: random.Random, hospital_name: str) -> str:
    """The clinic's address, from its name ("sekretariat@klinikum-paderborn.de")."""
    domain = "-".join(ascii_letters(w.lower().translate(UMLAUTS)) for w in re.split(r"[\s.-]+", hospital_name) if w)
    return f"{rng.choice(['sekretariat', 'ambulanz', 'notaufnahme', 'innere'])}@{domain}.de"


def _person(fake: Faker, female: bool) -> Tuple[str, str]:
    return (fake.first_name_female() if female else fake.first_name_male()), fake.last_name()


def _relative(fake: Faker, rng: random.Random, female_patient: bool, age: int, last: str) -> Dict[str, List[Segment]]:
    """The slots of one relative: the relation with its articles and possessives, the name."""
    relation = rng.choice(relatives_for_age(DATA, age))
    female = DATA["relatives"][relation] == "f"
    first, relative_last = _person(fake, female)
    if relation in DATA["same_surname_relatives"] and rng.random() < 0.6:
        relative_last = last
    name = f"{first} {relative_last}" if rng.random() < 0.7 else first
    own = "ihr" if female_patient else "sein"
    return {
        "rel": [(relation, None)],
        "rel_full": [(name, RELATIVE)],
        "Rel_nom": [(f"{own.capitalize()}{'e' if female else ''} {relation}", None)],
        "rel_mit": [(f"{own}{'er' if female else 'em'} {relation}", None)],
        "rel_dat": [(f"{'der' if female else 'dem'} {relation}", None)],
    }


def _doctor(fake: Faker, rng: random.Random) -> Tuple[Dict[str, str], bool]:
    """One doctor's name forms: full, last name, and as "Dr. med. ..." or "Frau/Herrn Dr. ..." after "mit"."""
    female = rng.random() < 0.5
    first, last = _person(fake, female)
    return {"full": f"{first} {last}", "last": last,
            "title": rng.choice(["Dr. med. ", "Prof. Dr. ", "Frau Dr. " if female else "Herrn Dr. "])}, female


# Long: one literal per slot, in the order the values are drawn from the seeded generators;
# that order fixes the corpus for a seed, so it is kept in one place rather than split.
def context(fake: Faker, rng: random.Random) -> Dict[str, List[Segment]]:
    """Draw one German patient and every slot the templates may mention.

    fake (Faker): the de_DE Faker of the split, seeded.
    rng (random.Random): the split's generator.
    RETURNS (Dict[str, List[Segment]]): the segments of each template slot.
    """
    female = rng.random() < 0.5
    first, last = _person(fake, female)
    age = rng.randint(18, 95)
    admitted = random_date(rng, date(2008, 1, 1), date(2023, 12, 31))
    born = admitted - timedelta(days=365 * age + rng.randint(1, 360))
    onset = admitted - timedelta(days=rng.randint(2, 25))
    long_ago = random_date(rng, admitted - timedelta(days=365 * min(age, 20)), admitted - timedelta(days=200))
    discharged = admitted + timedelta(days=rng.randint(1, 14))
    follow_up = discharged + timedelta(days=rng.randint(14, 120))
    doctor, _ = _doctor(fake, rng)
    doctor2, _ = _doctor(fake, rng)
    family_doctor, family_doctor_female = _doctor(fake, rng)
    clinic = hospital(fake, rng)
    clinic_phone, clinic_fax = clinic_numbers(rng)
    country = rng.choice(DATA["frequent_countries"]) if rng.random() < 0.7 else fake.country()

    def when(day: date, birth: bool = False) -> List[Segment]:
        return [(full_date(rng, day, birth), "DATE_BIRTH" if birth else "DATE")]

    born_text = when(born, birth=True)
    return {
        "pat": [(f"{first} {last}", PATIENT)],
        "pat_l": [(last, PATIENT)],
        "Frau": [("Frau" if female else "Herr", None)],
        "Frau_akk": [("Frau" if female else "Herrn", None)],
        "Der": [("Die" if female else "Der", None)],
        "Patient": [("Patientin" if female else "Patient", None)],
        "die_pat": [("die Patientin" if female else "der Patient", None)],
        "die_der": [("die" if female else "der", None)],
        "sie": [("sie" if female else "er", None)],
        "Sie": [("Sie" if female else "Er", None)],
        "age": [(str(age), "AGE")],
        "geb": born_text,
        "geb_dat": [("geb. ", None)] + born_text,
        "aufn_full": when(admitted),
        "aufn_full2": when(admitted),
        "aufn_dm": [(day_month(rng, admitted), "DATE")],
        "beginn_full": when(onset),
        "beginn_dm": [(day_month(rng, onset), "DATE")],
        "entl_full": when(discharged),
        "entl_dm": [(day_month(rng, discharged), "DATE")],
        "kontrolle_full": when(follow_up),
        "kontrolle_dm": [(day_month(rng, follow_up), "DATE")],
        "frueher_monat": [(f"{DATA['months'][long_ago.month - 1]} {long_ago.year}", "DATE")],
        "op_jahr": [(str(long_ago.year), "DATE")],
        "hospital": [(clinic, "LOCATION_HOSPITAL")],
        "hospital2": [(hospital(fake, rng), "LOCATION_HOSPITAL")],
        "abteilung": [(rng.choice(DATA["departments"]), None)],
        "dr_doc": [(doctor["title"], None), (doctor["full"] if doctor["title"] == "Dr. med. " else doctor["last"], DOCTOR)],
        "dr_doc2": [(doctor2["title"], None), (doctor2["last"], DOCTOR)],
        "hausarzt": [(family_doctor["full"], DOCTOR)],
        "hausarzt_dr": [("Dr. ", None), (family_doctor["last"], DOCTOR)],
        "greeting": [(DATA["greetings"]["f" if family_doctor_female else "m"], None),
                     (family_doctor["last"], DOCTOR), (",", None)],
        **_relative(fake, rng, female, age, last),
        "street": [(f"{fake.street_name()} {fake.building_number()}", "LOCATION_STREET")],
        "plz": [(fake.postcode(), "LOCATION_ZIP")],
        "city": [(fake.city(), "LOCATION_CITY")],
        "city2": [(fake.city(), "LOCATION_CITY")],
        "country": [(country, "COUNTRY")],
        "job": [(short_job(fake, 2), "PROFESSION")],
        "employer": [(employer(fake), "ORGANISATION")],
        "insurer": [(fill_pattern(rng.choice(DATA["insurer_patterns"]),
                                  {"city": fake.city, "last_name": fake.last_name}), "ORGANISATION")],
        "phone": [(phone(rng), "CONTACT_PHONE")],
        "phone2": [(phone(rng), "CONTACT_PHONE")],
        "phone_klinik": [(clinic_phone, "CONTACT_PHONE")],
        "fax": [(clinic_fax, "CONTACT_FAX")],
        "email": [(email(fake, rng, first, last), "CONTACT_EMAIL")],
        "email_klinik": [(clinic_email(rng, clinic), "CONTACT_EMAIL")],
        "pid": [(digits(rng, 8), "ID_PATIENT")],
        "fallnr": [(f"{admitted.year % 100:02d}{digits(rng, 7, '0123456789')}", "ID_PATIENT")],
        "kvnr": [(insurance_number(rng), "ID_INSURANCE")],
    }


def header(slots: Dict[str, List[Segment]], rng: random.Random) -> List[Segment]:
    """A letter's header: maybe the clinic's letterhead, a title, "Field: value" lines (the
    patient first), maybe a greeting and a section heading.

    slots (Dict[str, List[Segment]]): the patient's slots (`context`).
    rng (random.Random): the split's generator.
    RETURNS (List[Segment]): the header's segments.
    """
    out: List[Segment] = []
    if rng.random() < 0.5:
        out.extend(render_template(rng.choice(DATA["letterheads"]), slots))
    out.append((rng.choice(DATA["titles"]) + "\n", None))
    core, optional = pick_header_fields(DATA["header_fields"], DATA["header_core"])
    rng.shuffle(optional)
    fields = core + optional[: rng.randint(2, 6)]
    for label, template in fields:
        out.append((f"{label}: ", None))
        out.extend(render_template(template, slots))
        out.append(("\n", None))
    greeting = rng.random()
    if greeting < 0.3:
        out.extend(slots["greeting"] + [("\n", None)])
    elif greeting < 0.5:
        out.append((rng.choice(DATA["greetings"]["all"]) + "\n", None))
    section = rng.choice(DATA["sections"])
    if section:
        out.append((section + "\n", None))
    return out
