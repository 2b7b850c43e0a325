"""Spanish demo notes (MEDDOCAN labels): one patient drawn, then the header and the slots.

Spans follow MEDDOCAN's conventions as far as a template generator can: "45 años" is EDAD,
"Varón" is SEXO, the whole street line is CALLE, city and postcode are TERRITORIO, titles
such as "Dra." stay outside name spans, "el" stays outside date spans. DNI/NIE/NASS numbers
use the scheme and control letter of Faker's es_ES `nif`/`nie`/`nuss` but are drawn from the
seeded generator (Faker's own draw from the global `random` module: not reproducible).
Word lists and templates: `es.json`.
"""
from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Dict, List, Tuple

from faker import Faker
from faker.providers.ssn.es_ES import Provider as EsSsnProvider

from deid_synthesis.corpus.demo.values import (
    Segment,
    ascii_letters,
    clean_company,
    ends_safely,
    fill_pattern,
    language_data,
    pick_header_fields,
    random_date,
    relatives_for_age,
    render_template,
    short_job,
)

DATA = language_data("es")
NAME = "NOMBRE_SUJETO_ASISTENCIA"
STAFF = "NOMBRE_PERSONAL_SANITARIO"
RELATIVE = "FAMILIARES_SUJETO_ASISTENCIA"


def date_text(rng: random.Random, day: date, full_only: bool = False) -> str:
    """A date as Spanish notes write it ("03/05/2019", "3 de mayo de 2019", "mayo de 2019")."""
    months = DATA["months"]
    styles = ["slash", "slash", "long", "long", "dash", "slash_short"]
    if not full_only:
        styles += ["month_year"]
    style = rng.choice(styles)
    if style == "slash":
        return f"{day.day:02d}/{day.month:02d}/{day.year}"
    if style == "slash_short":
        return f"{day.day}/{day.month}/{day.year}"
    if style == "dash":
        return f"{day.day:02d}-{day.month:02d}-{day.year}"
    if style == "long":
        return f"{day.day} de {months[day.month - 1]} de {day.year}"
    return f"{months[day.month - 1]} de {day.year}"


def hospital(fake: Faker, rng: random.Random) -> str:
    """A hospital name from the data's patterns ("Hospital General de Soria")."""
    city = fake.city()
    return fill_pattern(rng.choice(DATA["hospital_patterns"]), {
        "city": lambda: city, "first_name_male": fake.first_name_male,
        "first_name_female": fake.first_name_female, "last_name": fake.last_name})


def institution(fake: Faker, rng: random.Random) -> str:
    """An institution or company name that a period may follow (see `ends_safely`)."""
    city = fake.city()
    values = {"city": lambda: city, "first_name_male": fake.first_name_male, "last_name": fake.last_name,
              "company": lambda: clean_company(fake.company())}
    for _ in range(10):
        name = fill_pattern(rng.choice(DATA["institution_patterns"]), values)
        if name and ends_safely(name):
            return name
    return fill_pattern(DATA["institution_fallback"], values)


def street(fake: Faker, rng: random.Random) -> str:
    """A street line, sometimes with floor and door ("Calle Mayor 5, 3º B")."""
    line = f"{fake.street_name()} {fake.building_number()}"
    draw = rng.random()
    if draw < 0.35:
        line += f", {rng.randint(1, 9)}º {rng.choice('ABCDEFGH')}"
    elif draw < 0.55:
        line += f", {rng.randint(1, 9)}º {rng.choice(DATA['floor_sides'])}"
    elif draw < 0.7:
        line += f", piso {rng.randint(1, 12)}"
    return line


def phone(fake: Faker, rng: random.Random) -> str:
    """A Faker phone number, or nine digits grouped as Spanish notes write them."""
    if rng.random() < 0.5:
        return fake.phone_number()
    digits = rng.choice("6789") + "".join(str(rng.randint(0, 9)) for _ in range(8))
    style = rng.choice(["plain", "3-3-3", "3-2-2-2"])
    if style == "plain":
        return digits
    if style == "3-3-3":
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return f"{digits[:3]} {digits[3:5]} {digits[5:7]} {digits[7:]}"


def email(fake: Faker, rng: random.Random, first: str, last: str) -> str:
    """A free e-mail address, or one made of the patient's name."""
    if rng.random() < 0.5:
        return fake.free_email()
    user = rng.choice([
        f"{ascii_letters(first)}.{ascii_letters(last)}",
        f"{ascii_letters(first)[:1]}{ascii_letters(last)}",
        f"{ascii_letters(first)}{rng.randint(1, 99)}",
    ])
    return f"{user}@{fake.free_email_domain()}"


def dni(rng: random.Random) -> str:
    """A Spanish DNI/NIF ("12345678Z"), Faker's es_ES control letter."""
    body = rng.randrange(0, 10**8)
    return f"{body:08d}" + EsSsnProvider._calculate_control_doi(str(body))


def nie(rng: random.Random) -> str:
    """A Spanish NIE ("X1234567L"), see `dni`."""
    first = rng.randrange(0, 3)
    body = f"{rng.randrange(0, 10**7):07d}"
    return "XYZ"[first] + body + EsSsnProvider._calculate_control_doi(f"{first}{body}")


def nass(rng: random.Random) -> str:
    """A social-security number written "28 12345678 90" (the scheme of Faker's `nuss`)."""
    province = f"{rng.choice(list(range(1, 54)) + [66]):02d}"
    body = "".join(str(rng.randint(0, 9)) for _ in range(8))
    return f"{province} {body} {int(province + body) % 97:02d}"


def _doctor(fake: Faker, rng: random.Random) -> Tuple[str, str, bool]:
    female = rng.random() < 0.5
    first = fake.first_name_female() if female else fake.first_name_male()
    return f"{first} {fake.last_name()} {fake.last_name()}", ("Dra." if female else "Dr."), female


# Long: one literal per slot, in the order the values are drawn from the seeded generators;
# that order fixes the corpus for a seed, so it is kept in one place rather than split.
def context(fake: Faker, rng: random.Random) -> Dict[str, List[Segment]]:
    """Draw one Spanish patient and every slot the templates may mention.

    fake (Faker): the es_ES Faker of the split, seeded.
    rng (random.Random): the split's generator.
    RETURNS (Dict[str, List[Segment]]): the segments of each template slot.
    """
    male = rng.random() < 0.5
    first = fake.first_name_male() if male else fake.first_name_female()
    last1, last2 = fake.last_name(), fake.last_name()
    age = rng.randint(18, 92)
    admitted = random_date(rng, date(2010, 1, 1), date(2023, 12, 31))
    born = admitted - timedelta(days=365 * age + rng.randint(1, 360))
    before = admitted - timedelta(days=rng.randint(2, 30))
    long_ago = random_date(rng, born + timedelta(days=365 * max(age - 15, 1)), admitted - timedelta(days=200))
    discharged = admitted + timedelta(days=rng.randint(2, 20))
    follow_up = discharged + timedelta(days=rng.randint(14, 120))
    doctor1, title1, female1 = _doctor(fake, rng)
    doctor2, title2, female2 = _doctor(fake, rng)
    relation = rng.choice(relatives_for_age(DATA, age))
    relative = fake.first_name_female() if DATA["relatives"][relation] == "f" else fake.first_name_male()
    relative_full = f"{relative} {fake.last_name()}" if rng.random() < 0.3 else relative
    city, city2 = fake.city(), fake.city()
    country = rng.choice(DATA["frequent_countries"]) if rng.random() < 0.7 else fake.country()
    birth_country = "España" if rng.random() < 0.6 else country
    sex_header = rng.choice(["Varón", "Hombre", "H"] if male else ["Mujer", "M"])
    record_number = "".join(str(rng.randint(0, 9)) for _ in range(rng.choice([6, 7, 8])))
    licence = f"{rng.randint(1, 52):02d} {rng.randint(1, 52):02d} {rng.randint(10000, 99999)}"

    def when(day: date, full_only: bool = False) -> List[Segment]:
        return [(date_text(rng, day, full_only), "FECHAS")]

    return {
        "nombre": [(first, NAME)],
        "apellidos": [(f"{last1} {last2}", NAME)],
        "paciente": [(f"{first} {last1} {last2}", NAME)],
        "paciente_trat": [("la Sra. " if not male else "el Sr. ", None), (last1, NAME)],
        "Paciente_trat": [("La Sra. " if not male else "El Sr. ", None), (last1, NAME)],
        "edad": [(f"{age} años", "EDAD_SUJETO_ASISTENCIA")],
        "edad_num": [(str(age), "EDAD_SUJETO_ASISTENCIA")],
        "sexo": [("varón" if male else "mujer", "SEXO_SUJETO_ASISTENCIA")],
        "sexo_header": [(sex_header, "SEXO_SUJETO_ASISTENCIA")],
        "o": [("o" if male else "a", None)],
        "un": [("un" if male else "una", None)],
        "Un": [("Un" if male else "Una", None)],
        "el": [("el" if male else "la", None)],
        "fecha_nac": when(born, full_only=True),
        "fecha_ingreso": when(admitted, full_only=True),
        "fecha_ingreso2": when(admitted, full_only=True),
        "fecha_previa": when(before, full_only=True),
        "fecha_alta": when(discharged, full_only=True),
        "fecha_control": when(follow_up, full_only=True),
        "fecha_antigua": when(long_ago),
        "anio_antiguo": [(str(long_ago.year), "FECHAS")],
        "hospital": [(hospital(fake, rng), "HOSPITAL")],
        "hospital2": [(hospital(fake, rng), "HOSPITAL")],
        "medico": [(doctor1, STAFF)],
        "dr_medico": [(("la " if female1 else "el ") + title1 + " ", None), (doctor1, STAFF)],
        "a_medico2": [(("a la " if female2 else "al ") + title2 + " ", None), (doctor2, STAFF)],
        "dr_medico2": [(("la " if female2 else "el ") + title2 + " ", None), (doctor2, STAFF)],
        "tit_medico": [(title1 + " ", None), (doctor1, STAFF)],
        "colegiado": [(licence, "ID_TITULACION_PERSONAL_SANITARIO")],
        "familiar": [(f"su {relation} ", None), (relative_full, RELATIVE)],
        "familiar_coma": [(f"su {relation}, ", None), (relative_full, RELATIVE), (",", None)],
        "ciudad": [(city, "TERRITORIO")],
        "ciudad2": [(city2, "TERRITORIO")],
        "cp": [(fake.postcode(), "TERRITORIO")],
        "calle": [(street(fake, rng), "CALLE")],
        "pais": [(country, "PAIS")],
        "pais_nac": [(birth_country, "PAIS")],
        "profesion": [(short_job(fake).lower(), "PROFESION")],
        "institucion": [(institution(fake, rng), "INSTITUCION")],
        "telefono": [(phone(fake, rng), "NUMERO_TELEFONO")],
        "telefono_familiar": [(phone(fake, rng), "NUMERO_TELEFONO")],
        "telefono_unidad": [(phone(fake, rng), "NUMERO_TELEFONO")],
        "correo": [(email(fake, rng, first, last1), "CORREO_ELECTRONICO")],
        "dni": [(dni(rng) if rng.random() < 0.8 else nie(rng), "ID_SUJETO_ASISTENCIA")],
        "nhc": [(record_number, "ID_SUJETO_ASISTENCIA")],
        "nass": [(nass(rng), "ID_ASEGURAMIENTO")],
        "servicio": [(rng.choice(DATA["services"]), None)],
        "n_dias": [(str((discharged - admitted).days), None)],
    }


def _header_fields(rng: random.Random) -> List[Tuple[str, str]]:
    """The header's fields: the name first, some optional ones, the core ones, shuffled."""
    core, optional = pick_header_fields(DATA["header_fields"], DATA["header_core"])
    rng.shuffle(optional)
    chosen = optional[: rng.randint(3, 8)]
    # "Nombre" and "Nombre y apellidos" are alternatives, as are both name forms.
    names = [f for f in chosen if f[0].startswith("Nombre")]
    chosen = [f for f in chosen if not f[0].startswith("Nombre")]
    if names or rng.random() < 0.5:
        if rng.random() < 0.5:
            names = [("Nombre", "{nombre}"), ("Apellidos", "{apellidos}")]
        else:
            names = [names[0] if names else ("Nombre", "{paciente}")]
    rest = chosen + core
    rng.shuffle(rest)  # the name stays first, as in real headers
    fields = names + rest
    # "NºCol" belongs right after "Médico" when both are there.
    licence, doctor = ("NºCol", "{colegiado}"), ("Médico", "{tit_medico}")
    if licence in fields and doctor in fields:
        fields.remove(licence)
        fields.insert(fields.index(doctor) + 1, licence)
    return fields


def header(slots: Dict[str, List[Segment]], rng: random.Random) -> List[Segment]:
    """A note's header: a title, "Field: value" lines, maybe a section heading.

    slots (Dict[str, List[Segment]]): the patient's slots (`context`).
    rng (random.Random): the split's generator.
    RETURNS (List[Segment]): the header's segments.
    """
    fields = _header_fields(rng)
    with_periods = rng.random() < 0.5
    out: List[Segment] = [(rng.choice(DATA["titles"]) + "\n", None)]
    for i, (label, template) in enumerate(fields):
        segments = render_template(template, slots)
        value = "".join(text for text, _ in segments)
        end = "." if with_periods and ends_safely(value) else ""
        # Occasionally two short fields share a line ("Edad: 45 años Sexo: H").
        separator = "\n"
        if label == "Edad" and i + 1 < len(fields) and fields[i + 1][0] == "Sexo" and rng.random() < 0.6:
            separator = " "
        out.append((f"{label}: ", None))
        out.extend(segments)
        out.append((end + separator, None))
    section = rng.choice(DATA["sections"])
    if section:
        out.append((section + "\n", None))
    return out
