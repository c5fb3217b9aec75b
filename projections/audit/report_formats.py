"""Report bodies: CSV that spreadsheets open safely, and a streamed JSON array.

Both encoders turn rows into bytes chunk by chunk (about 64 KiB each), so a report of any
length is written in constant memory. Neither writes anything that depends on when or
where it runs: the same rows give the same bytes.

CSV (RFC 4180: UTF-8, a header row, CRLF line ends): every text cell is quoted, numbers are
not; lists (SANs) are joined with ``"; "``; empty cells are ``""``. A text cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed gets a ``'`` in
front, so a spreadsheet shows it as text instead of running it as a formula (OWASP, "CSV
Injection"). Numbers the service itself writes (positions, quota changes such as ``-1``)
are left as numbers.

JSON: one array, one object per row on its own line, keys in column order, lists as
arrays, empty cells as ``null``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from enum import StrEnum

from projections.audit.report_context import Row

CHUNK_BYTES = 64 * 1024
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_FORMULA_CHARS = frozenset(_FORMULA_STARTS)


class ReportFormat(StrEnum):
    """How a report's rows are written."""

    CSV = "csv"
    JSON = "json"

    @property
    def media_type(self) -> str:
        return "text/csv; charset=utf-8" if self is ReportFormat.CSV else "application/json"


def neutralise(text: str) -> str:
    """``text`` made safe to open in a spreadsheet: a leading ``'`` if it could start a
    formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def encode(fmt: ReportFormat, columns: tuple[str, ...], rows: Iterable[Row]) -> Iterator[bytes]:
    """The body of ``rows`` in ``fmt``, in chunks."""
    if fmt is ReportFormat.CSV:
        return _csv_chunks(columns, rows)
    return _json_chunks(columns, rows)


def _csv_chunks(columns: tuple[str, ...], rows: Iterable[Row]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(_csv_cells(row))
        if buffer.tell() >= CHUNK_BYTES:
            yield _drain(buffer)
    yield _drain(buffer)


def _csv_cells(row: Row) -> list[str | int | None]:
    """The row's cells for the CSV writer: lists joined, text neutralised (inlined: this
    runs for every cell of every row)."""
    cells: list[str | int | None] = []
    for cell in row:
        value = "; ".join(cell) if isinstance(cell, tuple) else cell
        if isinstance(value, str) and value[:1] in _FORMULA_CHARS:
            value = "'" + value
        cells.append(value)
    return cells


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def _json_chunks(columns: tuple[str, ...], rows: Iterable[Row]) -> Iterator[bytes]:
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = ["["]
    size = 1
    separator = "\n"
    for row in rows:
        text = encoder.encode(dict(zip(columns, row, strict=True)))
        parts.append(separator)
        parts.append(text)
        separator = ",\n"
        size += len(text) + 2
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts).encode("utf-8")
