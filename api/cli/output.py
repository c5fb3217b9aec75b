"""Printing command results: a readable table by default, JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

Row = Mapping[str, object]


class CommandFailedError(Exception):
    """Raised by a command whose result is a failure to report: ``rows`` are printed as
    usual, then ``detail`` on standard error, and `pca` exits with status 1."""

    def __init__(self, rows: Sequence[Row], detail: str) -> None:
        super().__init__(detail)
        self.rows = rows
        self.detail = detail


def emit(rows: Sequence[Row], *, as_json: bool, out: TextIO = sys.stdout) -> None:
    """Print ``rows`` as an aligned table, or as JSON (one object, or a list)."""
    if as_json:
        payload: object = rows[0] if len(rows) == 1 else list(rows)
        out.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    if not rows:
        out.write("(none)\n")
        return
    columns = list(rows[0].keys())
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    out.write(
        "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n"
    )
    for line in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


def _cell(value: object) -> str:
    """One table cell: no Python reprs, no multi-line text, every time as ISO 8601 UTC
    with a Z (--json keeps the values whole)."""
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={_cell(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value)
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    text = str(value)
    if "-----BEGIN " in text:
        return "(PEM: use --json)"
    if _UTC_TIME.match(text):
        return text.removesuffix("+00:00") + "Z"
    return text.replace("\n", " ")


_UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")
