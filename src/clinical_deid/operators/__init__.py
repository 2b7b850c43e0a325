"""Surrogate operators: one small class per kind, found by name.

In the style of Presidio's anonymizer operators: each kind ("name", "date", "id_es_dni",
...) is an `Operator` with `validate(text)` (raise where no surrogate can replace the value:
the span is then redacted) and `operate(text, surrogates)` (draw the surrogate with the
document's shared state, a `clinical_deid.surrogates.Surrogates`). `get_operator(name)` is
the factory; `Surrogates.get` calls it and remembers what was drawn.
"""
from __future__ import annotations

from typing import Dict, Type

from .base import Keep, Operator
from .contact import Email, Ip, Phone, Url
from .ids import IdEsDni, IdGeneric, IdSePersonnummer, NotAnId
from .institutions import Hospital, Organisation, Profession
from .names import FirstName, LastName, Name
from .places import City, Country, Street, Territory
from .temporal import Age, Date

_OPERATOR_CLASSES: Dict[str, Type[Operator]] = {
    cls.name: cls for cls in (
        Name, FirstName, LastName, Street, City, Territory, Country, Hospital, Organisation,
        Date, Age, Phone, Email, IdEsDni, IdSePersonnummer, IdGeneric, Url, Ip, Profession, Keep,
    )
}
_OPERATORS: Dict[str, Operator] = {name: cls() for name, cls in _OPERATOR_CLASSES.items()}


def get_operator(name: str) -> Operator:
    """The operator of a surrogate kind.

    name (str): A kind that has surrogates (KINDS but "relative", "redact" and "mask",
        which DeidTransform settles before drawing).
    RETURNS (Operator): Its operator; KeyError naming the kind if there is none.
    """
    try:
        return _OPERATORS[name]
    except KeyError:
        raise KeyError(f"no surrogate operator for kind {name!r}; choose from {sorted(_OPERATORS)}") from None


def operator_names() -> list:
    """RETURNS (list): The kinds that have an operator, sorted."""
    return sorted(_OPERATORS)


__all__ = ["Operator", "NotAnId", "get_operator", "operator_names"]
