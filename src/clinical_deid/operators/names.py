"""Names: each name part gets its own surrogate, kept for the document (with a key, for the
run), so "García" alone and in "Ana García" agree.

A first name is drawn of the sex the original looks like (Faker's female and male lists;
Spanish endings -a/-o where the lists do not tell); particles and titles ("de", "Dr.") stay.
"""
from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Dict, Optional

from ..folding import WORD, fold, match_case
from ..vocabulary import NOT_NAMES
from .base import Operator
from .ids import draw_generic_id

if TYPE_CHECKING:
    from ..surrogates import Surrogates


def _nfc_folded(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()  # the name lists are NFC


def _is_first_name(word: str, surrogates: "Surrogates") -> bool:
    folded = _nfc_folded(word)
    return folded in surrogates.data.first_female.lookup or folded in surrogates.data.first_male.lookup


def _guess_role(word: str, surrogates: "Surrogates") -> str:
    """A lone word's role: a part drawn already or a known surname is a surname."""
    if fold(word) in surrogates.parts or _nfc_folded(word) in surrogates.data.last.lookup:
        return "last"
    return "first" if _is_first_name(word, surrogates) else "last"


def draw_name(text: str, surrogates: "Surrogates", role: Optional[str] = None) -> str:
    """Each name part gets its own surrogate (kept for the document); a whole name that
    comes out as a string to avoid ("Paula Egea Capdevila", a real name) has its newly
    drawn parts drawn again.

    text (str): The original name. surrogates (Surrogates): The document's state.
    role (Optional[str]): "first" or "last" for every part; None: guessed per part.
    RETURNS (str): The name with each part replaced.
    """
    for attempt in range(10):
        before = set(surrogates.parts)
        value = _assemble_name(text, surrogates, role, attempt)
        new = set(surrogates.parts) - before
        if not new or not surrogates.leaks(value):
            break
        for key in new:
            del surrogates.parts[key]
    return value


def _roles(text: str, surrogates: "Surrogates", role: Optional[str]) -> Dict[int, str]:
    """Each name part's role by its start: given, by a comma ("García, Ana"), guessed for a
    lone word, else leading first names ("María José García"): the first word unless it is
    only known as a surname ("Andreu Fonseca"), then known first names; never the last."""
    words = list(WORD.finditer(text))
    real = [m for m in words if len(words) == 1 or m.group().casefold() not in NOT_NAMES]
    comma = text.find(",")
    roles: Dict[int, str] = {}
    for i, m in enumerate(real):
        if role:
            roles[m.start()] = role
        elif comma >= 0:
            roles[m.start()] = "last" if m.start() < comma else "first"
        elif len(real) == 1:
            roles[m.start()] = _guess_role(m.group(), surrogates)
        else:
            word = m.group()
            if i == 0:
                leading = _is_first_name(word, surrogates) or _nfc_folded(word) not in surrogates.data.last.lookup
            else:
                leading = (
                    i < len(real) - 1
                    and roles.get(real[i - 1].start()) == "first"
                    and _is_first_name(word, surrogates)
                )
            roles[m.start()] = "first" if leading else "last"
    return roles


def _assemble_name(text: str, surrogates: "Surrogates", role: Optional[str], attempt: int) -> str:
    words = list(WORD.finditer(text))
    if not words:  # no letters: not a name after all, but still replaced
        return draw_generic_id(text, surrogates)
    roles = _roles(text, surrogates, role)
    out, pos = [], 0
    for m in words:
        out.append(text[pos : m.start()])
        pos = m.end()
        if m.start() not in roles:
            out.append(m.group())
        else:
            out.append(_part(m.group(), roles[m.start()], surrogates, attempt))
    out.append(text[pos:])
    return "".join(out)


def _part(word: str, role: str, surrogates: "Surrogates", attempt: int) -> str:
    """A name part's surrogate, the same for the part in any case or accent form. With a
    key it is drawn from the part alone (its role and the name's attempt), so a surname gets
    the same surrogate alone and inside every full name, in every note of the run."""
    folded = _nfc_folded(word)
    initial = len(folded) == 1
    key = fold(word) + "." if initial else fold(word)
    if key not in surrogates.parts:
        with surrogates.scope("name-part", role, key, str(attempt)):
            surrogates.parts[key] = _draw_part(word, folded, role, initial, surrogates)
    return match_case(word, surrogates.parts[key])


def _draw_part(word: str, folded: str, role: str, initial: bool, surrogates: "Surrogates") -> str:
    """A drawn name part: a first name of the sex the original looks like, or a surname."""
    data, rng = surrogates.data, surrogates.rng
    if role == "first":
        female = folded in data.first_female.lookup
        male = folded in data.first_male.lookup
        if female == male:
            if data.lang == "es" and folded[-1:] in ("a", "o"):  # Spanish endings
                female = folded.endswith("a")
            else:
                female = rng.random() < 0.5
        pool = data.first_female if female else data.first_male
    else:
        pool = data.last
    value = surrogates.fresh(lambda: pool.draw(rng))
    if initial:
        value = next((c for c in value if c.upper() != word.upper()), value[0])
        value = value.upper()
    return value


class Name(Operator):
    """A person's name, part by part (see draw_name)."""

    name = "name"
    role: Optional[str] = None

    def operate(self, text: str, surrogates: "Surrogates") -> str:
        return draw_name(text, surrogates, self.role)


class FirstName(Name):
    """A first name (every part drawn as a first name)."""

    name = "first_name"
    role = "first"


class LastName(Name):
    """A surname (every part drawn as a surname)."""

    name = "last_name"
    role = "last"
