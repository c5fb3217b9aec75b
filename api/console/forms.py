"""Reading HTML form fields into the values the application takes, with errors that name
the field (the form shows each beside its control). Form controls are named like the
fields the domain's errors name (``subject.common_name``, ``sans[2].value``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from flask import request

from api.inputs import subject_from
from domain.model.errors import ValidationError
from domain.model.validation import MAX_SANS
from domain.model.values import Subject

SUBJECT_FIELDS = ("organization", "organizational_unit", "locality", "state", "country")
E = TypeVar("E", bound=Enum)
BLANK_SAN_ROWS = 3  # rows the request form offers before any is filled


def text(name: str) -> str | None:
    """The field's value stripped of spaces at its ends; None when empty or absent."""
    value = request.form.get(name, "").strip()
    return value or None


def whole(name: str, *, required: bool = False) -> int | None:
    """The field as a whole number; None when empty (ValidationError if ``required``)."""
    value = text(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required; enter a whole number.", field=name)
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ValidationError(f"{name} must be a whole number; got {value!r}.", field=name)
    return int(value)


def subject() -> Subject:
    """The subject from the ``subject.*`` fields."""
    fields: dict[str, str | None] = {name: text(f"subject.{name}") for name in SUBJECT_FIELDS}
    return subject_from({**fields, "common_name": text("subject.common_name") or ""})


@dataclass(frozen=True)
class SANRow:
    """One row of the SAN table: its type and value as typed."""

    type: str
    value: str


def san_rows(*, add: bool = False) -> tuple[SANRow, ...]:
    """The filled SAN rows, in order and renumbered from 0 (the indices errors name),
    then blank rows: ``BLANK_SAN_ROWS`` at first, one more with ``add``, never over
    ``MAX_SANS`` rows in all."""
    filled = []
    for index in range(MAX_SANS * 2):  # a forged form may number its rows freely
        value = request.form.get(f"sans[{index}].value", "").strip()
        if value:
            filled.append(SANRow(request.form.get(f"sans[{index}].type", "dns"), value))
    blank = max(BLANK_SAN_ROWS - len(filled), 0) + (1 if add else 0)
    blank = min(blank, max(MAX_SANS - len(filled), 0))
    return (*filled, *(SANRow("dns", "") for _ in range(blank)))


def checkbox(name: str) -> bool:
    """Whether the checkbox ``name`` was ticked (an unticked one sends nothing)."""
    return name in request.form


def choice(name: str, options: type[E], default: E | None = None) -> E:
    """The field as one of ``options`` (by value); ValidationError naming the choices."""
    value = request.form.get(name, "")
    if not value and default is not None:
        return default
    for option in options:
        if option.value == value:
            return option
    allowed = ", ".join(str(option.value) for option in options)
    raise ValidationError(f"{name} must be one of {allowed}; got {value!r}.", field=name)
