"""What every text field of a request goes through: control characters refused, the
value stripped, and user values quoted the same way in every error message."""

from __future__ import annotations

import re

from domain.model.errors import ValidationError

# C0 controls (NUL included), DEL, C1 controls, and the bidirectional controls (U+061C,
# U+200E-F, U+202A-E, U+2066-9) that make a name read differently from what it is ("Trojan
# Source", CVE-2021-42574), as the inside of a character class that the HTTP schema's
# patterns reuse; and lone surrogates, which are no text at all.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_FORBIDDEN_CHARS = re.compile(f"[{CONTROL_CHARACTERS}\\ud800-\\udfff]")


def show(value: str) -> str:
    """Quote a user value for a message: shortened, with control characters escaped."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def clean(value: object, field: str, error: type[ValidationError], what: str) -> str:
    """Return ``value`` stripped of surrounding whitespace, refusing control characters."""
    if not isinstance(value, str):
        raise error(f"{what} must be a string; got {type(value).__name__}", field=field)
    bad = _FORBIDDEN_CHARS.search(value)
    if bad:
        raise error(
            f"remove the control character U+{ord(bad.group()):04X} from {what} {show(value)}",
            field=field,
        )
    return value.strip()
