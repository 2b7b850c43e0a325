"""Demo corpus: synthetic clinical notes with PHI spans, written by this project.

THIS IS A DEMO, NOT CLINICAL DATA. Every note is template text (a pool of
hand-written header fields and ~27 narrative sentences per language) with
PHI slots filled by Faker's locale providers (es_ES, sv_SE: names, cities,
streets, postcodes, phone numbers, e-mails, countries, jobs, companies) and a
few small word lists; hospitals are built from Faker city names ("Hospital
General de Soria", "Lidköpings lasarett", "Universitetssjukhuset i Växjö").
Spanish DNI/NIE/NASS numbers use the same scheme and control letter as
Faker's es_ES ``nif``/``nie``/``nuss`` but are drawn from the seeded generator
(Faker's own versions use the global ``random`` module, so they would break
reproducibility). It exists so that new users can run the whole workflow offline,
end to end, before they bring their own annotated corpus.

The notes are far easier than real clinical text: the vocabulary is small,
every PHI value sits in a handful of fixed contexts, there are no typos, no
abbreviation soup, no ambiguous mentions and no annotation disagreement.
Models trained or evaluated on it will score very high, and those scores mean
nothing about performance on real notes. Do not report them as results.

Label sets follow the two reference corpora:

* Spanish (``es``): the MEDDOCAN labels (NOMBRE_SUJETO_ASISTENCIA, FECHAS,
  TERRITORIO, ...). Spans follow MEDDOCAN's conventions as far as a template
  generator can: "45 años" is EDAD, "Varón" is SEXO, the whole street line is
  CALLE, city and postcode are TERRITORIO, titles such as "Dra." stay outside
  name spans, "el" stays outside date spans.
* Swedish (``sv``): the Stockholm EPR PHI corpus labels (First_Name,
  Last_Name, Phone_Number, Age, Full_Date, Date_Part, Health_Care_Unit,
  Location). First and last names are separate spans; Age is the number only
  ("67" in "67 år"); day+month+year is Full_Date, anything less (a day and a
  month, a month and a year, a year) is Date_Part. That label set has no
  identifier class, so the Swedish notes contain no personnummer at all
  (writing one unannotated would teach a model to leave it in place).

Output documents are ``{"id", "text", "spans": [{"start", "end", "label"}]}``
with character offsets; spans are sorted, non-overlapping, and every span
lines up with the tokens of ``spacy.blank(lang)`` (this is checked while
generating: a note that does not line up is drawn again, deterministically).

Usage::

    python -m deid_synthesis.demo_corpus OUTPUT_DIR --lang es --n-train 300 \
        --n-dev 60 --n-test 60 --seed 0

writes OUTPUT_DIR/train.jsonl, dev.jsonl and test.jsonl. The same arguments
always give the same files byte for byte; each split (and each language) is
drawn from its own seed derived from ``--seed``.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import srsly
import typer
from faker import Faker
from faker.providers.ssn.es_ES import Provider as EsSsnProvider
from wasabi import msg

# --------------------------------------------------------------------------
# Label sets
# --------------------------------------------------------------------------

LABELS_ES: Tuple[str, ...] = (
    "NOMBRE_SUJETO_ASISTENCIA",
    "EDAD_SUJETO_ASISTENCIA",
    "SEXO_SUJETO_ASISTENCIA",
    "FECHAS",
    "TERRITORIO",
    "CALLE",
    "PAIS",
    "HOSPITAL",
    "NOMBRE_PERSONAL_SANITARIO",
    "ID_SUJETO_ASISTENCIA",
    "ID_ASEGURAMIENTO",
    "ID_TITULACION_PERSONAL_SANITARIO",
    "CORREO_ELECTRONICO",
    "NUMERO_TELEFONO",
    "FAMILIARES_SUJETO_ASISTENCIA",
    "PROFESION",
    "INSTITUCION",
)

LABELS_SV: Tuple[str, ...] = (
    "First_Name",
    "Last_Name",
    "Phone_Number",
    "Age",
    "Full_Date",
    "Date_Part",
    "Health_Care_Unit",
    "Location",
)

LABELS: Dict[str, Tuple[str, ...]] = {"es": LABELS_ES, "sv": LABELS_SV}
FAKER_LOCALES: Dict[str, str] = {"es": "es_ES", "sv": "sv_SE"}
SPLITS: Tuple[str, ...] = ("train", "dev", "test")

MIN_WORDS = 60
MAX_WORDS = 150

# A segment is a piece of text with an optional label (None = plain text).
Segment = Tuple[str, Optional[str]]


# --------------------------------------------------------------------------
# Text builder
# --------------------------------------------------------------------------


class _Builder:
    """Accumulates text and character-offset spans."""

    def __init__(self) -> None:
        self.parts: List[str] = []
        self.length = 0
        self.spans: List[Dict[str, object]] = []

    def add(self, text: str, label: Optional[str] = None) -> None:
        if label is not None:
            if not text or text != text.strip():
                raise ValueError(f"bad entity text {text!r} for {label}")
            self.spans.append(
                {"start": self.length, "end": self.length + len(text), "label": label}
            )
        self.parts.append(text)
        self.length += len(text)

    def add_segments(self, segments: Iterable[Segment]) -> None:
        for text, label in segments:
            self.add(text, label)

    @property
    def text(self) -> str:
        return "".join(self.parts)


_SLOT_RE = re.compile(r"\{(\w+)\}")


def render_template(template: str, slots: Dict[str, List[Segment]]) -> List[Segment]:
    """Fill ``{slot}`` markers in ``template`` with segment lists from ``slots``."""
    out: List[Segment] = []
    pos = 0
    for m in _SLOT_RE.finditer(template):
        if m.start() > pos:
            out.append((template[pos : m.start()], None))
        out.extend(slots[m.group(1)])
        pos = m.end()
    if pos < len(template):
        out.append((template[pos:], None))
    return out


def _words(segments: Iterable[Segment]) -> int:
    return len("".join(t for t, _ in segments).split())


def _ends_safely(value: str) -> bool:
    """True when a '.' right after ``value`` is split off by spaCy's tokenizer.

    spaCy keeps "B." / "H." (single capital + period) and "12345678Z." (digits
    followed by a letter) together, so fields ending like that get no period.
    """
    return bool(re.search(r"(\d|[a-záéíóúñüåäöé]{2,}|[A-ZÁÉÍÓÚÑÅÄÖ][a-záéíóúñüåäö]+)$", value)) and not re.search(
        r"\d[A-Za-z]$", value
    )


# --------------------------------------------------------------------------
# Shared value helpers
# --------------------------------------------------------------------------


def _rand_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def _short_job(fake: Faker, max_words: int = 3) -> str:
    for _ in range(30):
        job = fake.job().split("(")[0].strip()
        if 0 < len(job.split()) <= max_words:
            return job
    return "administrativo"


def _clean_company(name: str) -> str:
    """Drop legal-form suffixes ("S.L.", "AB", ...) from a Faker company name."""
    name = re.sub(r"\s+(S\.?L\.?|S\.?A\.?|S\.?Coop\.?|S\.?L\.?L\.?|S\.?L\.?U\.?)$", "", name)
    name = re.sub(r"\s+(AB|HB|KB)$", "", name)
    return name.strip(" ,")


def _relatives_for_age(relations: Dict[str, str], age: int) -> List[str]:
    """Relations that make sense for a patient of ``age`` (no grandchildren at 30)."""
    grandchild = {"nieto", "nieta", "barnbarn"}
    child = {"hijo", "hija", "son", "dotter"}
    parent = {"madre", "padre", "mor", "far"}
    out = []
    for rel in relations:
        if rel in grandchild and age < 60:
            continue
        if rel in child and age < 35:
            continue
        if rel in parent and age > 70:
            continue
        out.append(rel)
    return out


# --------------------------------------------------------------------------
# Spanish
# --------------------------------------------------------------------------

MESES_ES = (
    "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
    "agosto", "septiembre", "octubre", "noviembre", "diciembre",
)
PARENTESCOS_ES = {
    # relation -> grammatical gender of the relative
    "hija": "f", "hijo": "m", "esposa": "f", "marido": "m", "madre": "f",
    "padre": "m", "hermana": "f", "hermano": "m", "sobrina": "f", "nieto": "m",
}
SERVICIOS_ES = (
    "Medicina Interna", "Neumología", "Cardiología", "Digestivo", "Urología",
    "Neurología", "Oncología Médica", "Cirugía General", "Nefrología",
)
PAISES_FRECUENTES_ES = (
    "España", "Marruecos", "Rumanía", "Colombia", "Ecuador", "Perú",
    "Argentina", "Venezuela", "Francia", "Portugal", "Bolivia", "China",
)


def _fecha_es(rng: random.Random, d: date, full_only: bool = False) -> str:
    styles = ["slash", "slash", "long", "long", "dash", "slash_short"]
    if not full_only:
        styles += ["month_year"]
    style = rng.choice(styles)
    if style == "slash":
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if style == "slash_short":
        return f"{d.day}/{d.month}/{d.year}"
    if style == "dash":
        return f"{d.day:02d}-{d.month:02d}-{d.year}"
    if style == "long":
        return f"{d.day} de {MESES_ES[d.month - 1]} de {d.year}"
    return f"{MESES_ES[d.month - 1]} de {d.year}"


def _hospital_es(fake: Faker, rng: random.Random) -> str:
    city = fake.city()
    patterns = [
        lambda: f"Hospital Universitario de {city}",
        lambda: f"Hospital General de {city}",
        lambda: f"Hospital Comarcal de {city}",
        lambda: f"Complejo Hospitalario de {city}",
        lambda: f"Hospital Clínico de {city}",
        lambda: f"Hospital San {fake.first_name_male()}",
        lambda: f"Hospital Santa {fake.first_name_female()}",
        lambda: f"Hospital {fake.last_name()}",
    ]
    return rng.choice(patterns)()


def _institucion_es(fake: Faker, rng: random.Random) -> str:
    city = fake.city()
    patterns = [
        lambda: f"Universidad de {city}",
        lambda: f"Ayuntamiento de {city}",
        lambda: f"Colegio Público {fake.first_name_male()} {fake.last_name()}",
        lambda: f"Residencia {fake.last_name()}",
        lambda: _clean_company(fake.company()),
        lambda: _clean_company(fake.company()),
    ]
    for _ in range(10):
        name = rng.choice(patterns)()
        if name and _ends_safely(name):
            return name
    return f"Ayuntamiento de {city}"


def _calle_es(fake: Faker, rng: random.Random) -> str:
    street = f"{fake.street_name()} {fake.building_number()}"
    r = rng.random()
    if r < 0.35:
        street += f", {rng.randint(1, 9)}º {rng.choice('ABCDEFGH')}"
    elif r < 0.55:
        street += f", {rng.randint(1, 9)}º {rng.choice(['izquierda', 'derecha', 'izda', 'dcha'])}"
    elif r < 0.7:
        street += f", piso {rng.randint(1, 12)}"
    return street


def _telefono_es(fake: Faker, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return fake.phone_number()
    first = rng.choice("6789")
    digits = first + "".join(str(rng.randint(0, 9)) for _ in range(8))
    style = rng.choice(["plain", "3-3-3", "3-2-2-2"])
    if style == "plain":
        return digits
    if style == "3-3-3":
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return f"{digits[:3]} {digits[3:5]} {digits[5:7]} {digits[7:]}"


def _correo(fake: Faker, rng: random.Random, first: str, last: str) -> str:
    import unicodedata

    def ascii_(s: str) -> str:
        s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
        return re.sub(r"[^a-z]", "", s.lower())

    if rng.random() < 0.5:
        return fake.free_email()
    user = rng.choice(
        [
            f"{ascii_(first)}.{ascii_(last)}",
            f"{ascii_(first)[:1]}{ascii_(last)}",
            f"{ascii_(first)}{rng.randint(1, 99)}",
        ]
    )
    return f"{user}@{fake.free_email_domain()}"


def _dni_es(rng: random.Random) -> str:
    """Spanish DNI/NIF ("12345678Z").

    Faker's es_ES ``nif``/``nie``/``nuss`` draw from the global ``random``
    module, not from the seeded generator, so they are not reproducible; the
    numbers are drawn here and Faker's es_ES control-letter routine is reused.
    """
    body = rng.randrange(0, 10**8)
    return f"{body:08d}" + EsSsnProvider._calculate_control_doi(str(body))


def _nie_es(rng: random.Random) -> str:
    """Spanish NIE ("X1234567L"), see :func:`_dni_es`."""
    first = rng.randrange(0, 3)
    body = f"{rng.randrange(0, 10**7):07d}"
    return "XYZ"[first] + body + EsSsnProvider._calculate_control_doi(f"{first}{body}")


def _nass_es(rng: random.Random) -> str:
    """Spanish social-security number written "28 12345678 90" (same scheme as Faker's ``nuss``)."""
    province = f"{rng.choice(list(range(1, 54)) + [66]):02d}"
    body = "".join(str(rng.randint(0, 9)) for _ in range(8))
    control = f"{int(province + body) % 97:02d}"
    return f"{province} {body} {control}"


def _es_context(fake: Faker, rng: random.Random) -> Dict[str, List[Segment]]:
    """Draw one Spanish patient and everything the templates may mention."""
    N = "NOMBRE_SUJETO_ASISTENCIA"
    male = rng.random() < 0.5
    first = fake.first_name_male() if male else fake.first_name_female()
    last1, last2 = fake.last_name(), fake.last_name()
    full = f"{first} {last1} {last2}"
    age = rng.randint(18, 92)
    ingreso = _rand_date(rng, date(2010, 1, 1), date(2023, 12, 31))
    nacimiento = ingreso - timedelta(days=365 * age + rng.randint(1, 360))
    previa = ingreso - timedelta(days=rng.randint(2, 30))
    antigua = _rand_date(rng, nacimiento + timedelta(days=365 * max(age - 15, 1)), ingreso - timedelta(days=200))
    alta = ingreso + timedelta(days=rng.randint(2, 20))
    control = alta + timedelta(days=rng.randint(14, 120))

    def medico() -> Tuple[str, str, bool]:
        fem = rng.random() < 0.5
        name = f"{fake.first_name_female() if fem else fake.first_name_male()} {fake.last_name()} {fake.last_name()}"
        return name, ("Dra." if fem else "Dr."), fem

    med1, tit1, fem1 = medico()
    med2, tit2, fem2 = medico()
    rel = rng.choice(_relatives_for_age(PARENTESCOS_ES, age))
    rel_name = fake.first_name_female() if PARENTESCOS_ES[rel] == "f" else fake.first_name_male()
    rel_full = f"{rel_name} {fake.last_name()}" if rng.random() < 0.3 else rel_name
    ciudad = fake.city()
    ciudad2 = fake.city()
    pais = rng.choice(PAISES_FRECUENTES_ES) if rng.random() < 0.7 else fake.country()
    pais_nac = "España" if rng.random() < 0.6 else pais
    sexo_header = rng.choice(["Varón", "Hombre", "H"] if male else ["Mujer", "M"])
    sexo_texto = "varón" if male else "mujer"
    nhc = "".join(str(rng.randint(0, 9)) for _ in range(rng.choice([6, 7, 8])))
    colegiado = f"{rng.randint(1, 52):02d} {rng.randint(1, 52):02d} {rng.randint(10000, 99999)}"

    def fecha(d: date, full_only: bool = False) -> List[Segment]:
        return [(_fecha_es(rng, d, full_only), "FECHAS")]

    ctx: Dict[str, List[Segment]] = {
        "nombre": [(first, N)],
        "apellidos": [(f"{last1} {last2}", N)],
        "paciente": [(full, N)],
        "paciente_trat": [("la Sra. " if not male else "el Sr. ", None), (last1, N)],
        "Paciente_trat": [("La Sra. " if not male else "El Sr. ", None), (last1, N)],
        "edad": [(f"{age} años", "EDAD_SUJETO_ASISTENCIA")],
        "edad_num": [(str(age), "EDAD_SUJETO_ASISTENCIA")],
        "sexo": [(sexo_texto, "SEXO_SUJETO_ASISTENCIA")],
        "sexo_header": [(sexo_header, "SEXO_SUJETO_ASISTENCIA")],
        "o": [("o" if male else "a", None)],
        "un": [("un" if male else "una", None)],
        "Un": [("Un" if male else "Una", None)],
        "el": [("el" if male else "la", None)],
        "fecha_nac": fecha(nacimiento, full_only=True),
        "fecha_ingreso": fecha(ingreso, full_only=True),
        "fecha_ingreso2": fecha(ingreso, full_only=True),
        "fecha_previa": fecha(previa, full_only=True),
        "fecha_alta": fecha(alta, full_only=True),
        "fecha_control": fecha(control, full_only=True),
        "fecha_antigua": fecha(antigua),
        "anio_antiguo": [(str(antigua.year), "FECHAS")],
        "hospital": [(_hospital_es(fake, rng), "HOSPITAL")],
        "hospital2": [(_hospital_es(fake, rng), "HOSPITAL")],
        "medico": [(med1, "NOMBRE_PERSONAL_SANITARIO")],
        "dr_medico": [(("la " if fem1 else "el ") + tit1 + " ", None), (med1, "NOMBRE_PERSONAL_SANITARIO")],
        "a_medico2": [(("a la " if fem2 else "al ") + tit2 + " ", None), (med2, "NOMBRE_PERSONAL_SANITARIO")],
        "dr_medico2": [(("la " if fem2 else "el ") + tit2 + " ", None), (med2, "NOMBRE_PERSONAL_SANITARIO")],
        "tit_medico": [(tit1 + " ", None), (med1, "NOMBRE_PERSONAL_SANITARIO")],
        "colegiado": [(colegiado, "ID_TITULACION_PERSONAL_SANITARIO")],
        "familiar": [(f"su {rel} ", None), (rel_full, "FAMILIARES_SUJETO_ASISTENCIA")],
        "familiar_coma": [(f"su {rel}, ", None), (rel_full, "FAMILIARES_SUJETO_ASISTENCIA"), (",", None)],
        "ciudad": [(ciudad, "TERRITORIO")],
        "ciudad2": [(ciudad2, "TERRITORIO")],
        "cp": [(fake.postcode(), "TERRITORIO")],
        "calle": [(_calle_es(fake, rng), "CALLE")],
        "pais": [(pais, "PAIS")],
        "pais_nac": [(pais_nac, "PAIS")],
        "profesion": [(_short_job(fake).lower(), "PROFESION")],
        "institucion": [(_institucion_es(fake, rng), "INSTITUCION")],
        "telefono": [(_telefono_es(fake, rng), "NUMERO_TELEFONO")],
        "telefono_familiar": [(_telefono_es(fake, rng), "NUMERO_TELEFONO")],
        "telefono_unidad": [(_telefono_es(fake, rng), "NUMERO_TELEFONO")],
        "correo": [(_correo(fake, rng, first, last1), "CORREO_ELECTRONICO")],
        "dni": [(_dni_es(rng) if rng.random() < 0.8 else _nie_es(rng), "ID_SUJETO_ASISTENCIA")],
        "nhc": [(nhc, "ID_SUJETO_ASISTENCIA")],
        "nass": [(_nass_es(rng), "ID_ASEGURAMIENTO")],
        "servicio": [(rng.choice(SERVICIOS_ES), None)],
        "n_dias": [(str((alta - ingreso).days), None)],
    }
    return ctx


# (field label, slot or template). Header fields are written "Label: value".
HEADER_ES: Tuple[Tuple[str, str], ...] = (
    ("Nombre", "{paciente}"),
    ("Nombre y apellidos", "{paciente}"),
    ("DNI", "{dni}"),
    ("NHC", "{nhc}"),
    ("NASS", "{nass}"),
    ("Domicilio", "{calle}"),
    ("Localidad/ Provincia", "{ciudad}"),
    ("CP", "{cp}"),
    ("Fecha de nacimiento", "{fecha_nac}"),
    ("País de nacimiento", "{pais_nac}"),
    ("Edad", "{edad}"),
    ("Sexo", "{sexo_header}"),
    ("Fecha de ingreso", "{fecha_ingreso2}"),
    ("Hospital", "{hospital}"),
    ("Médico", "{tit_medico}"),
    ("NºCol", "{colegiado}"),
    ("Teléfono", "{telefono}"),
    ("Correo electrónico", "{correo}"),
    ("Profesión", "{profesion}"),
)
# Fields that always appear (the others are sampled).
HEADER_ES_CORE = ("Edad", "Sexo")

# Narrative sentences, in the order a note would tell them (a note uses a
# subset, kept in this order).
NARRATIVE_ES: Tuple[str, ...] = (
    "Se trata de {un} {sexo} de {edad}, natural de {ciudad}, que consulta por astenia, anorexia y pérdida de peso de tres meses de evolución.",
    "{Un} {sexo} de {edad} acude al Servicio de Urgencias del {hospital} el {fecha_ingreso} por dolor torácico opresivo de dos horas de evolución.",
    "Natural de {pais}, reside en {ciudad} desde hace más de diez años.",
    "Ha residido en {pais} durante cinco años por motivos laborales y actualmente vive en {ciudad2}.",
    "Como antecedentes personales destaca hipertensión arterial en tratamiento con enalapril y dislipemia; trabaja como {profesion} en {institucion} y niega hábitos tóxicos.",
    "{Paciente_trat} trabaja como {profesion} y vive con {familiar} en {ciudad}.",
    "Convive con {familiar_coma} que colabora en la administración de la medicación.",
    "Entre los antecedentes familiares destaca que {familiar} padece diabetes mellitus tipo 2.",
    "Fue intervenid{o} de apendicectomía en el {hospital2} en {anio_antiguo}, sin complicaciones posteriores.",
    "En {fecha_antigua} sufrió un accidente de tráfico en {ciudad2} que precisó ingreso en la Unidad de Cuidados Intensivos del {hospital2}.",
    "Refiere fiebre de hasta 38,5 ºC, tos productiva y disnea de moderados esfuerzos desde el {fecha_previa}.",
    "Acude acompañad{o} de {familiar}, quien refiere episodios de desorientación en las últimas semanas.",
    "En la exploración física presenta buen estado general, con orientación conservada, eupnea en reposo y auscultación cardiopulmonar sin hallazgos.",
    "Se realiza analítica sanguínea que muestra leucocitosis con neutrofilia y elevación de la proteína C reactiva.",
    "La radiografía de tórax realizada el {fecha_ingreso} evidencia una condensación en el lóbulo inferior derecho.",
    "La ecografía abdominal muestra hepatomegalia homogénea sin lesiones focales ni dilatación de la vía biliar.",
    "Ante la sospecha de neoplasia pulmonar se solicita tomografía computarizada toracoabdominal, que se realiza el {fecha_control}.",
    "El estudio anatomopatológico de la biopsia confirma el diagnóstico de adenocarcinoma de colon.",
    "Es valorad{o} por {dr_medico}, del Servicio de {servicio}, que decide su ingreso para estudio.",
    "Se solicita interconsulta al Servicio de Cardiología, siendo valorad{o} por {dr_medico2} el {fecha_control}.",
    "Se inicia tratamiento antibiótico empírico con amoxicilina y ácido clavulánico, con buena evolución clínica.",
    "Tras {n_dias} días de ingreso, es dad{o} de alta el {fecha_alta} con seguimiento en consultas externas del {hospital}.",
    "Al alta se pauta omeprazol 20 mg cada 24 horas y paracetamol 1 g cada 8 horas si precisa.",
    "Se remite {a_medico2}, del {hospital2}, para valoración por el Servicio de {servicio}.",
    "Se deriva a su médico de atención primaria, {dr_medico2}, para control de cifras tensionales.",
    "Se contacta telefónicamente con {familiar} en el número {telefono_familiar} para informar de la evolución.",
    "En la revisión del {fecha_control} se encuentra asintomátic{o} y con constantes dentro de la normalidad.",
    "{Paciente_trat}, de {edad_num} años, refiere buena tolerancia al tratamiento pautado el {fecha_alta}.",
    "Para cualquier consulta puede contactar con la unidad en {correo} o en el teléfono {telefono_unidad}.",
)

TITLES_ES = (
    "Informe clínico",
    "Informe de alta",
    "Caso clínico",
    "Datos del paciente.",
    "Informe de urgencias",
)
SECTION_ES = ("Anamnesis:", "Evolución:", "Informe clínico del paciente:", "Historia actual:", "")


def _header_es(ctx: Dict[str, List[Segment]], rng: random.Random) -> List[Segment]:
    optional = [f for f in HEADER_ES if f[0] not in HEADER_ES_CORE]
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
    fields = names + chosen + [f for f in HEADER_ES if f[0] in HEADER_ES_CORE]
    # Keep the name first (as real headers do) but shuffle the rest a little.
    rest = fields[len(names):]
    rng.shuffle(rest)
    fields = names + rest
    # "NºCol" belongs right after "Médico" when both are there.
    if ("NºCol", "{colegiado}") in fields and ("Médico", "{tit_medico}") in fields:
        fields.remove(("NºCol", "{colegiado}"))
        fields.insert(fields.index(("Médico", "{tit_medico}")) + 1, ("NºCol", "{colegiado}"))

    with_periods = rng.random() < 0.5
    out: List[Segment] = [(rng.choice(TITLES_ES) + "\n", None)]
    for i, (label, tmpl) in enumerate(fields):
        segs = render_template(tmpl, ctx)
        value = "".join(t for t, _ in segs)
        end = "." if with_periods and _ends_safely(value) else ""
        # Occasionally two short fields share a line ("Edad: 45 años Sexo: H").
        sep = "\n"
        if label == "Edad" and i + 1 < len(fields) and fields[i + 1][0] == "Sexo" and rng.random() < 0.6:
            sep = " "
        out.append((f"{label}: ", None))
        out.extend(segs)
        out.append((end + sep, None))
    section = rng.choice(SECTION_ES)
    if section:
        out.append((section + "\n", None))
    return out


# --------------------------------------------------------------------------
# Swedish
# --------------------------------------------------------------------------

MANADER_SV = (
    "januari", "februari", "mars", "april", "maj", "juni", "juli",
    "augusti", "september", "oktober", "november", "december",
)
RELATIONER_SV = {
    "dotter": "f", "son": "m", "make": "m", "maka": "f", "sambo": "x",
    "syster": "f", "bror": "m", "mor": "f", "far": "m", "barnbarn": "x",
}
KLINIKER_SV = (
    "medicinkliniken", "kirurgkliniken", "ortopedkliniken", "infektionskliniken",
    "kardiologkliniken", "geriatriska kliniken", "akutmottagningen", "lungkliniken",
)
LANDER_SV = (
    "Finland", "Norge", "Danmark", "Polen", "Irak", "Syrien", "Iran",
    "Somalia", "Turkiet", "Chile", "Bosnien", "Tyskland",
)


def _genitive_sv(name: str) -> str:
    return name if name[-1] in "sxzSXZ" else name + "s"


def _unit_sv(fake: Faker, rng: random.Random) -> str:
    city = fake.city()
    patterns = [
        lambda: f"{_genitive_sv(city)} sjukhus",
        lambda: f"{_genitive_sv(city)} lasarett",
        lambda: f"{city}sjukhuset" if " " not in city else f"{_genitive_sv(city)} sjukhus",
        lambda: f"Universitetssjukhuset i {city}",
        lambda: f"Länssjukhuset i {city}",
        lambda: f"Vårdcentralen {city}",
        lambda: f"{city} vårdcentral",
        lambda: f"Akutmottagningen {_genitive_sv(city)} sjukhus",
        lambda: f"avdelning {rng.randint(1, 99)}",
        lambda: f"{rng.choice(KLINIKER_SV)} på {_genitive_sv(city)} sjukhus",
    ]
    return rng.choice(patterns)()


def _phone_sv(fake: Faker, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return fake.phone_number()
    prefix = rng.choice(["070", "072", "073", "076", "08", "031", "040", "018"])
    d = "".join(str(rng.randint(0, 9)) for _ in range(7))
    return rng.choice(
        [
            f"{prefix}-{d[:3]} {d[3:5]} {d[5:]}",
            f"{prefix}-{d}",
            f"{prefix} {d[:3]} {d[3:5]} {d[5:]}",
        ]
    )


def _full_date_sv(rng: random.Random, d: date) -> str:
    style = rng.choice(["iso", "iso", "long", "long", "slash", "compact"])
    if style == "iso":
        return d.isoformat()
    if style == "long":
        return f"{d.day} {MANADER_SV[d.month - 1]} {d.year}"
    if style == "slash":
        return f"{d.day}/{d.month} {d.year}"
    return d.strftime("%y%m%d")


def _date_part_sv(rng: random.Random, d: date) -> str:
    style = rng.choice(["dm", "dm", "long_dm", "long_dm"])
    if style == "dm":
        return f"{d.day}/{d.month}"
    return f"{d.day} {MANADER_SV[d.month - 1]}"


def _sv_context(fake: Faker, rng: random.Random) -> Dict[str, List[Segment]]:
    """Draw one Swedish patient and everything the templates may mention."""
    F, L = "First_Name", "Last_Name"
    female = rng.random() < 0.5
    first = fake.first_name_female() if female else fake.first_name_male()
    last = fake.last_name()
    age = rng.randint(18, 95)
    inskr = _rand_date(rng, date(2008, 1, 1), date(2023, 12, 31))
    debut = inskr - timedelta(days=rng.randint(2, 25))
    antigen = _rand_date(rng, inskr - timedelta(days=365 * min(age, 20)), inskr - timedelta(days=200))
    utskr = inskr + timedelta(days=rng.randint(1, 14))
    kontroll = utskr + timedelta(days=rng.randint(14, 120))

    def person(fem: Optional[bool] = None) -> Tuple[str, str]:
        fem = rng.random() < 0.5 if fem is None else fem
        return (fake.first_name_female() if fem else fake.first_name_male()), fake.last_name()

    doc_f, doc_l = person()
    doc2_f, doc2_l = person()
    rel = rng.choice(_relatives_for_age(RELATIONER_SV, age))
    g = RELATIONER_SV[rel]
    rel_f, rel_l = person(None if g == "x" else g == "f")
    if rel in ("dotter", "son", "syster", "bror", "barnbarn") and rng.random() < 0.6:
        rel_l = last  # children and siblings often share the surname
    city = fake.city()
    city2 = fake.city()
    country = rng.choice(LANDER_SV) if rng.random() < 0.7 else fake.country()

    ctx: Dict[str, List[Segment]] = {
        "pat": [(first, F), (" ", None), (last, L)],
        "pat_f": [(first, F)],
        "pat_l": [(last, L)],
        "age": [(str(age), "Age")],
        "kvinna": [("kvinna" if female else "man", None)],
        "hon": [("hon" if female else "han", None)],
        "Hon": [("Hon" if female else "Han", None)],
        "inskr_full": [(_full_date_sv(rng, inskr), "Full_Date")],
        "inskr_full2": [(_full_date_sv(rng, inskr), "Full_Date")],
        "inskr_part": [(_date_part_sv(rng, inskr), "Date_Part")],
        "debut_part": [(_date_part_sv(rng, debut), "Date_Part")],
        "debut_full": [(_full_date_sv(rng, debut), "Full_Date")],
        "utskr_full": [(_full_date_sv(rng, utskr), "Full_Date")],
        "utskr_part": [(_date_part_sv(rng, utskr), "Date_Part")],
        "kontroll_full": [(_full_date_sv(rng, kontroll), "Full_Date")],
        "kontroll_part": [(_date_part_sv(rng, kontroll), "Date_Part")],
        "antigen_year": [(str(antigen.year), "Date_Part")],
        "antigen_month": [(f"{MANADER_SV[antigen.month - 1]} {antigen.year}", "Date_Part")],
        "unit": [(_unit_sv(fake, rng), "Health_Care_Unit")],
        "unit2": [(_unit_sv(fake, rng), "Health_Care_Unit")],
        "unit3": [(f"Vårdcentralen {fake.city()}" if rng.random() < 0.5 else f"{fake.city()} vårdcentral", "Health_Care_Unit")],
        "doc": [(doc_f, F), (" ", None), (doc_l, L)],
        "doc_l": [("dr ", None), (doc_l, L)],
        "doc2": [(doc2_f, F), (" ", None), (doc2_l, L)],
        "rel": [(rel, None)],
        "rel_f": [(rel_f, F)],
        "rel_full": [(rel_f, F), (" ", None), (rel_l, L)],
        "phone": [(_phone_sv(fake, rng), "Phone_Number")],
        "phone2": [(_phone_sv(fake, rng), "Phone_Number")],
        "street": [(f"{fake.street_name()} {fake.building_number()}", "Location")],
        "city": [(city, "Location")],
        "city2": [(city2, "Location")],
        "country": [(country, "Location")],
    }
    return ctx


HEADER_SV: Tuple[Tuple[str, str], ...] = (
    ("Patient", "{pat}"),
    ("Ålder", "{age} år"),
    ("Inskrivningsdatum", "{inskr_full2}"),
    ("Vårdenhet", "{unit}"),
    ("Adress", "{street}, {city}"),
    ("Telefon", "{phone}"),
    ("Ansvarig läkare", "{doc}"),
    ("Närmast anhörig", "{rel} {rel_full}, tel. {phone2}"),
)
HEADER_SV_CORE = ("Patient",)

# Narrative sentences, in journal order (a note uses a subset, kept in order).
NARRATIVE_SV: Tuple[str, ...] = (
    "{pat_f} är en {age} år gammal {kvinna} som inkommer med ambulans till {unit} på grund av tilltagande andfåddhet.",
    "{pat} inkommer i sällskap med sin {rel} som berättar att {hon} har varit förvirrad sedan igår.",
    "Söker {debut_full} på grund av feber och hosta sedan en vecka tillbaka.",
    "Remitteras från {unit2} för vidare utredning av anemi.",
    "Tidigare frisk, arbetar som snickare och bor tillsammans med sin {rel} {rel_f} i {city}.",
    "Född och uppvuxen i {country}, flyttade till {city} för tjugo år sedan.",
    "Opererades för appendicit på {unit2} år {antigen_year}, utan komplikationer.",
    "Vårdades på {unit2} i {antigen_month} för en pneumoni.",
    "Har varit på semester i {city2} och insjuknade dagen efter hemkomsten den {debut_part}.",
    "{Hon} har sedan {debut_part} haft tilltagande smärtor i höger höft.",
    "Vid ankomst afebril, cirkulatoriskt stabil med blodtryck 145/90 och puls 88.",
    "Status: Allmäntillstånd gott, hjärta regelbunden rytm utan blåsljud, lungor vesikulära andningsljud bilateralt.",
    "Provtagning visar CRP 120 och lätt förhöjda levervärden, i övrigt normala prover.",
    "Lungröntgen den {inskr_part} visar infiltrat basalt höger.",
    "Bedömning: Sannolikt pneumoni, behandlas med bensylpenicillin 3 g x 3.",
    "Bedöms av {doc_l} som ordinerar intravenös antibiotika och vätska.",
    "Diskuterat med {doc2} som rekommenderar datortomografi av buken.",
    "Insättes på Waran enligt ordination av {doc}, ansvarig läkare.",
    "Kontakt tas med patientens {rel} {rel_f} på telefon {phone2}, som bekräftar uppgifterna.",
    "Anhöriga: {rel} {rel_full}, nås på {phone2}.",
    "Remiss skickad till {unit2} den {inskr_part} för vidare bedömning.",
    "Överflyttas den {utskr_part} till {unit2} för fortsatt vård och rehabilitering.",
    "Skrivs ut till hemmet {utskr_full} med uppföljning via {unit3}.",
    "Planeras för återbesök på {unit} den {kontroll_full} hos {doc2}.",
    "Vid telefonkontakt den {kontroll_part} uppger {pat_f} att smärtan har minskat.",
    "Besöker mottagningen {kontroll_full} för kontroll av blodtryck, som nu ligger på 130/80.",
    "Telefonnummer till avdelningen: {phone}, dit {hon} kan ringa vid frågor.",
)

TITLES_SV = (
    "Inskrivningsanteckning",
    "Daganteckning",
    "Epikris",
    "Mottagningsanteckning",
    "Akutanteckning",
)
SECTION_SV = ("Aktuellt:", "Anamnes:", "Sjukhistoria:", "")


def _header_sv(ctx: Dict[str, List[Segment]], rng: random.Random) -> List[Segment]:
    core = [f for f in HEADER_SV if f[0] in HEADER_SV_CORE]
    optional = [f for f in HEADER_SV if f[0] not in HEADER_SV_CORE]
    rng.shuffle(optional)
    fields = core + optional[: rng.randint(2, len(optional))]
    rest = fields[1:]
    rng.shuffle(rest)
    fields = fields[:1] + rest
    out: List[Segment] = [(rng.choice(TITLES_SV) + "\n", None)]
    for label, tmpl in fields:
        out.append((f"{label}: ", None))
        out.extend(render_template(tmpl, ctx))
        out.append(("\n", None))
    section = rng.choice(SECTION_SV)
    if section:
        out.append((section + "\n", None))
    return out


# --------------------------------------------------------------------------
# Documents, splits, corpus
# --------------------------------------------------------------------------

_LANG_PARTS: Dict[str, Tuple[Callable, Callable, Sequence[str]]] = {
    "es": (_es_context, _header_es, NARRATIVE_ES),
    "sv": (_sv_context, _header_sv, NARRATIVE_SV),
}


def _check_lang(lang: str) -> None:
    if lang not in LABELS:
        raise ValueError(f"unsupported language {lang!r}; choose one of {sorted(LABELS)}")


def _draw_document(lang: str, fake: Faker, rng: random.Random) -> Tuple[str, List[Dict[str, object]]]:
    make_ctx, make_header, narrative = _LANG_PARTS[lang]
    ctx = make_ctx(fake, rng)
    header = make_header(ctx, rng)
    order = list(range(len(narrative)))
    rng.shuffle(order)
    n_sent = rng.randint(2, 6)
    chosen: List[Tuple[int, List[Segment]]] = []
    words = _words(header)
    # Draw sentences in random order until the note has n_sent sentences and
    # enough words (never more than 6 sentences or MAX_WORDS words), then
    # tell them in the pool's narrative order.
    for idx in order:
        if len(chosen) >= 6 or (len(chosen) >= n_sent and words >= MIN_WORDS):
            break
        sent = render_template(narrative[idx], ctx)
        if words + _words(sent) > MAX_WORDS:
            continue
        chosen.append((idx, sent))
        words += _words(sent)
    chosen.sort(key=lambda item: item[0])
    builder = _Builder()
    builder.add_segments(header)
    for i, (_, sent) in enumerate(chosen):
        if i:
            builder.add("\n" if rng.random() < 0.2 else " ")
        builder.add_segments(sent)
    return builder.text, builder.spans


@functools.lru_cache(maxsize=None)
def _blank(lang: str):
    import spacy

    return spacy.blank(lang)


def misaligned_spans(text: str, spans: Sequence[Dict[str, object]], lang: str) -> List[Dict[str, object]]:
    """Spans whose offsets do not fall on ``spacy.blank(lang)`` token boundaries."""
    doc = _blank(lang).make_doc(text)
    return [s for s in spans if doc.char_span(s["start"], s["end"]) is None]


def generate_document(
    lang: str, fake: Faker, rng: random.Random, doc_id: str, max_tries: int = 50
) -> Dict[str, object]:
    """One demo note ``{"id", "text", "spans"}``, drawn from ``fake``/``rng``.

    Notes whose spans do not line up with spaCy's tokenizer (or fall outside
    the word range) are drawn again from the same generators, so the result
    is still a deterministic function of the generators' state.
    """
    _check_lang(lang)
    for _ in range(max_tries):
        text, spans = _draw_document(lang, fake, rng)
        n_words = len(text.split())
        if not (MIN_WORDS <= n_words <= MAX_WORDS):
            continue
        if misaligned_spans(text, spans, lang):
            continue
        return {"id": doc_id, "text": text, "spans": spans}
    raise RuntimeError(f"could not draw a valid {lang} demo note in {max_tries} tries")


def split_seed(seed: int, lang: str, split: str) -> int:
    """Seed for one (language, split): stable across runs and Python versions."""
    digest = hashlib.sha256(f"demo-corpus|{lang}|{split}|{seed}".encode("utf8")).hexdigest()
    return int(digest[:12], 16)


def generate_split(lang: str, split: str, n: int, seed: int = 0) -> List[Dict[str, object]]:
    """``n`` demo notes for one split, ids ``demo-{lang}-{split}-0001``..."""
    _check_lang(lang)
    s = split_seed(seed, lang, split)
    fake = Faker(FAKER_LOCALES[lang])
    fake.seed_instance(s)
    rng = random.Random(s + 1)
    return [
        generate_document(lang, fake, rng, f"demo-{lang}-{split}-{i:04d}")
        for i in range(1, n + 1)
    ]


def generate_corpus(
    lang: str, n_train: int = 300, n_dev: int = 60, n_test: int = 60, seed: int = 0
) -> Dict[str, List[Dict[str, object]]]:
    """All three splits, keyed "train", "dev", "test"."""
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return {split: generate_split(lang, split, sizes[split], seed) for split in SPLITS}


def entity_counts(docs: Iterable[Dict[str, object]]) -> Counter:
    """Number of spans per label."""
    return Counter(span["label"] for doc in docs for span in doc["spans"])


def write_corpus(output_dir: Path, corpus: Dict[str, List[Dict[str, object]]]) -> Dict[str, Path]:
    """Write each split to ``output_dir/{split}.jsonl``; returns the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, docs in corpus.items():
        path = output_dir / f"{split}.jsonl"
        srsly.write_jsonl(path, docs)
        paths[split] = path
    return paths


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(
    output_dir: Annotated[Path, typer.Argument(help="Folder for train/dev/test.jsonl")],
    lang: Annotated[str, typer.Option(help="es (MEDDOCAN labels) or sv (Stockholm EPR PHI labels)")] = "es",
    n_train: Annotated[int, typer.Option(min=0, help="Documents in train.jsonl")] = 300,
    n_dev: Annotated[int, typer.Option(min=0, help="Documents in dev.jsonl")] = 60,
    n_test: Annotated[int, typer.Option(min=0, help="Documents in test.jsonl")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (each split derives its own)")] = 0,
) -> None:
    """Write a synthetic demo corpus (template notes + Faker PHI; not real data)."""
    if lang not in LABELS:
        msg.fail(f"Unsupported language {lang!r}; choose one of: {', '.join(sorted(LABELS))}", exits=1)
    corpus = generate_corpus(lang, n_train=n_train, n_dev=n_dev, n_test=n_test, seed=seed)
    write_corpus(output_dir, corpus)
    summary = ", ".join(
        f"{split} {len(docs)} docs / {sum(entity_counts(docs).values())} entities"
        for split, docs in corpus.items()
    )
    msg.good(f"Wrote demo corpus ({lang}, seed {seed}) to {output_dir}: {summary}")


if __name__ == "__main__":
    typer.run(main)
