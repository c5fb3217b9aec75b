"""A small schema language: one declaration both validates request data and describes it
as JSON Schema (2020-12, as OpenAPI 3.1 uses), so the published document cannot drift from
what the server accepts.

Validation errors are ``domain.model.errors.ValidationError`` with ``field`` set to the JSON path
of the offending value (``sans[2].value``), which the API turns into a 422 problem.

What JSON Schema cannot say stays with the domain and may still answer 422 for a
schema-valid request: a CSR's content (its DER, signature and key), the finer IDNA and
URI rules of SAN values, and entries that repeat once normalised. State the schema
cannot know is a 404 or 409 (see "The published contract" in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from domain.model.errors import ValidationError

JSON = dict[str, Any]


class Spec(Protocol):
    """A value's rules: ``parse`` checks and returns it, ``json_schema`` describes it."""

    def parse(self, value: object, path: str) -> Any: ...

    def json_schema(self) -> JSON: ...


def _fail(path: str, message: str) -> ValidationError:
    return ValidationError(f"{path or 'the body'} {message}", field=path or None)


_SURROGATE = re.compile(r"[\ud800-\udfff]")
DATE_TIME = "date-time"
MAX_UUID_LENGTH = len("urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6")  # the longest form


@dataclass(frozen=True)
class Str:
    """A string. ``pattern`` is searched as JSON Schema does (anchor it to match the whole
    value); ``format="date-time"`` is enforced, other formats are only documented."""

    description: str = ""
    min_length: int = 0
    max_length: int = 256
    enum: tuple[str, ...] = ()
    format: str = ""
    example: str = ""
    pattern: str = ""

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise _fail(path, "must be a string.")
        if _SURROGATE.search(value):
            # JSON allows "\ud800" escapes that decode to no character; nothing can store them.
            raise _fail(path, "must be valid Unicode text; remove the unpaired \\u surrogate.")
        if self.enum and value not in self.enum:
            raise _fail(path, f"must be one of {', '.join(self.enum)}; got {value[:40]!r}.")
        if not self.min_length <= len(value) <= self.max_length:
            raise _fail(path, f"must be {_length_range(self.min_length, self.max_length)}.")
        if self.pattern and not re.search(self.pattern, value):
            raise _fail(path, f"must match {self.pattern}; got {value[:40]!r}.")
        if self.format == DATE_TIME and not _is_instant(value):
            raise _fail(path, "must be an ISO 8601 time such as 2027-01-31T00:00:00Z.")
        return value

    def json_schema(self) -> JSON:
        schema: JSON = {"type": "string", "maxLength": self.max_length}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.enum:
            schema["enum"] = list(self.enum)
        for key, value in (
            ("format", self.format),
            ("pattern", self.pattern),
            ("description", self.description),
            ("examples", [self.example] if self.example else None),
        ):
            if value:
                schema[key] = value
        return schema


def _length_range(least: int, most: int) -> str:
    """A length rule as a sentence reads it: "at most 256 characters long"."""
    if least == 0:
        return f"at most {most} characters long"
    if least == most:
        return f"exactly {most} characters long"
    return f"{least} to {most} characters long"


def _is_instant(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 time that exists in UTC (an offset may push the last
    or first representable day out of range); without an offset it is read as UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return False
    return True


@dataclass(frozen=True)
class Uuid:
    description: str = ""

    def parse(self, value: object, path: str) -> UUID:
        if isinstance(value, str) and len(value) <= MAX_UUID_LENGTH:
            try:
                return UUID(value)
            except ValueError:
                pass
        raise _fail(path, "must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6.")

    def json_schema(self) -> JSON:
        schema: JSON = {"type": "string", "format": "uuid", "maxLength": MAX_UUID_LENGTH}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Int:
    minimum: int
    maximum: int
    description: str = ""

    def parse(self, value: object, path: str) -> int:
        # JSON Schema counts 170.0 as an integer, so a client's serializer may send it so.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"must be an integer from {self.minimum} to {self.maximum}.")
        return _in_range(value, self.minimum, self.maximum, path)

    def json_schema(self) -> JSON:
        schema: JSON = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.description:
            schema["description"] = self.description
        return schema


HUGE_DIGITS = 12  # numbers this long or longer are shown as "a huge number"


def _in_range(value: int, minimum: int, maximum: int, path: str) -> int:
    if not minimum <= value <= maximum:
        shown = value if abs(value) < 10**HUGE_DIGITS else "a huge number"
        raise _fail(path, f"must be from {minimum} to {maximum}; got {shown}.")
    return value


@dataclass(frozen=True)
class QueryInt:
    """An integer sent as text (a query or path parameter): decimal ASCII digits, in range."""

    minimum: int
    maximum: int
    description: str = ""

    def parse(self, value: object, path: str) -> int:
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
            shown = repr(value[:40]) if isinstance(value, str) else "a non-string"
            raise _fail(
                path, f"must be a whole number from {self.minimum} to {self.maximum}; got {shown}."
            )
        # More digits than the maximum has is out of range, and is never converted
        # (int()'s cost and limits grow with the length).
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(self.maximum)):
            shown = digits if len(digits) < HUGE_DIGITS else "a huge number"
            raise _fail(path, f"must be from {self.minimum} to {self.maximum}; got {shown}.")
        return _in_range(int(digits), self.minimum, self.maximum, path)

    def json_schema(self) -> JSON:
        return Int(self.minimum, self.maximum, self.description).json_schema()


@dataclass(frozen=True)
class Either:
    """A value that one of ``options`` accepts (JSON Schema ``anyOf``); the first that
    parses it wins, and ``message`` says what is accepted when none does."""

    options: tuple[Spec, ...]
    message: str
    description: str = ""

    def parse(self, value: object, path: str) -> Any:
        for option in self.options:
            try:
                return option.parse(value, path)
            except ValidationError:
                continue
        raise _fail(path, self.message)

    def json_schema(self) -> JSON:
        schema: JSON = {"anyOf": [option.json_schema() for option in self.options]}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Bool:
    description: str = ""

    def parse(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise _fail(path, "must be true or false.")
        return value

    def json_schema(self) -> JSON:
        schema: JSON = {"type": "boolean"}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Array:
    items: Spec
    max_items: int
    description: str = ""
    min_items: int = 0

    def parse(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail(path, "must be an array.")
        if len(value) < self.min_items:
            raise _fail(path, f"must hold at least {self.min_items} items; got {len(value)}.")
        if len(value) > self.max_items:
            raise _fail(path, f"may hold at most {self.max_items} items; got {len(value)}.")
        return [self.items.parse(item, f"{path}[{index}]") for index, item in enumerate(value)]

    def json_schema(self) -> JSON:
        schema: JSON = {
            "type": "array",
            "items": self.items.json_schema(),
            "maxItems": self.max_items,
        }
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Nullable:
    inner: Spec

    def parse(self, value: object, path: str) -> Any:
        return None if value is None else self.inner.parse(value, path)

    def json_schema(self) -> JSON:
        return {"anyOf": [self.inner.json_schema(), {"type": "null"}]}


@dataclass(frozen=True)
class AnyObject:
    """A JSON object whose fields are documented elsewhere (event payloads, reports)."""

    description: str = ""

    def parse(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "must be a JSON object.")
        return value

    def json_schema(self) -> JSON:
        schema: JSON = {"type": "object"}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class RequiredWhen:
    """Fields an object needs when one of its fields has one of ``values`` (JSON Schema
    ``if``/``then``): an intermediate CA needs its parent, a key download a password."""

    key: str
    values: tuple[str, ...]
    fields: frozenset[str]

    def missing(self, value: Mapping[str, object]) -> list[str]:
        if value.get(self.key) not in self.values:
            return []
        return sorted(self.fields - set(value))

    def json_schema(self) -> JSON:
        return {
            "if": {"properties": {self.key: {"enum": list(self.values)}}, "required": [self.key]},
            "then": {"required": sorted(self.fields)},
        }


@dataclass(frozen=True)
class When:
    """Rules for some fields of an object when one of its fields has one of ``values``
    (JSON Schema ``if``/``then``): a server certificate's SANs are DNS names and IPs."""

    key: str
    values: tuple[str, ...]
    then: Mapping[str, Spec]
    # At least one of these must hold in full (each field present and valid), and
    # ``needs`` says what when none does: a server certificate names its host somewhere.
    one_of: tuple[Mapping[str, Spec], ...] = ()
    needs: str = ""

    def check(self, value: Mapping[str, object], path: str) -> None:
        if value.get(self.key) not in self.values:
            return
        for name, spec in self.then.items():
            if name in value:
                spec.parse(value[name], _join(path, name))
        if self.one_of and not any(_holds(option, value, path) for option in self.one_of):
            raise _fail(_join(path, next(iter(self.one_of[0]))), self.needs)

    def json_schema(self) -> JSON:
        then: JSON = {"properties": {name: spec.json_schema() for name, spec in self.then.items()}}
        if self.one_of:
            then["anyOf"] = [
                {
                    "required": sorted(option),
                    "properties": {name: spec.json_schema() for name, spec in option.items()},
                }
                for option in self.one_of
            ]
        return {
            "if": {"properties": {self.key: {"enum": list(self.values)}}, "required": [self.key]},
            "then": then,
        }


def _holds(option: Mapping[str, Spec], value: Mapping[str, object], path: str) -> bool:
    try:
        for name, spec in option.items():
            if name not in value:
                return False
            spec.parse(value[name], _join(path, name))
    except ValidationError:
        return False
    return True


@dataclass(frozen=True)
class NotTogether:
    """Fields an object may hold one of, not all (JSON Schema ``not``/``required``)."""

    fields: tuple[str, ...]
    message: str

    def check(self, value: Mapping[str, object], path: str) -> None:
        if all(name in value for name in self.fields):
            raise _fail(_join(path, self.fields[0]), self.message)

    def json_schema(self) -> JSON:
        return {"not": {"required": list(self.fields)}}


@dataclass(frozen=True)
class Obj:
    """A JSON object with known properties; unknown ones are refused (typos show up)."""

    name: str
    properties: Mapping[str, Spec]
    required: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    required_when: tuple[RequiredWhen, ...] = ()
    when: tuple[When | NotTogether, ...] = ()

    def parse(self, value: object, path: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "must be a JSON object.")
        unknown = sorted(set(value) - set(self.properties))
        if unknown:
            allowed = ", ".join(self.properties) or "none here"
            raise _fail(
                _join(path, _shortened(unknown[0])), f"is not a known field; allowed: {allowed}."
            )
        missing = sorted(self.required - set(value))
        if missing:
            raise _fail(_join(path, missing[0]), "is required.")
        for needed in self.required_when:
            for name in needed.missing(value):
                raise _fail(
                    _join(path, name), f"is required when {needed.key} is {value[needed.key]}."
                )
        parsed = {
            key: self.properties[key].parse(item, _join(path, key)) for key, item in value.items()
        }
        for condition in self.when:
            condition.check(value, path)
        return parsed

    def json_schema(self) -> JSON:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def component(self) -> JSON:
        """The full schema, for the document's ``components``."""
        schema: JSON = {
            "type": "object",
            "properties": {key: spec.json_schema() for key, spec in self.properties.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = sorted(self.required)
        rules = [rule.json_schema() for rule in self.required_when]
        rules += [rule.json_schema() for rule in self.when]
        if rules:
            schema["allOf"] = rules
        if self.description:
            schema["description"] = self.description
        return schema

    def nested(self) -> list[Obj]:
        """This object and every object schema it contains, depth first."""
        found: list[Obj] = [self]
        for spec in self.properties.values():
            found.extend(_objects_in(spec))
        for rule in self.when:
            if isinstance(rule, When):
                for spec in rule.then.values():
                    found.extend(_objects_in(spec))
        return found


def _objects_in(spec: Spec) -> list[Obj]:
    if isinstance(spec, Obj):
        return spec.nested()
    if isinstance(spec, Array):
        return _objects_in(spec.items)
    if isinstance(spec, Nullable):
        return _objects_in(spec.inner)
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shortened(key: str, limit: int = 64) -> str:
    """An unknown key as an error names it: a client may send one of any length."""
    return key if len(key) <= limit else key[: limit - 3] + "..."


@dataclass(frozen=True)
class PerItem(Obj):
    """An object schema checked item by item by the view, not when the body is parsed.

    A batch answers each bad item on its own, so the body parser only checks that each
    item is an object, and that is what the request's schema says; the item's fields are
    a component of their own, named in the description, which :meth:`parse_item` checks.
    """

    def parse(self, value: object, path: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "must be a JSON object.")
        return value

    def json_schema(self) -> JSON:
        return {
            "type": "object",
            "description": f"an item as #/components/schemas/{self.name} describes it; "
            "an item that does not fit gets its problem in the answer, the others go ahead",
        }

    def parse_item(self, value: object, path: str) -> dict[str, Any]:
        return super().parse(value, path)
