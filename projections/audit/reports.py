"""Compliance exports: streamed, reproducible reports with a signed manifest.

``GET /api/v1/reports/{kind}`` and ``pca report KIND`` call :func:`open_report` (to stream)
or :func:`write_report` (to a file). The kinds and their columns are in
:mod:`projections.audit.report_kinds`, the CSV and JSON encodings in
:mod:`projections.audit.report_formats`, the signed manifest in
:mod:`projections.audit.report_manifest`; docs/AUDIT.md describes them for readers of the files.

Reproducible: a report reads the log only up to a cut (``at``: a position, a time, or the
end of the log when the report starts) and writes nothing that depends on the wall clock,
so the same cut and parameters give the same bytes. Its :class:`ReportManifest` names the
cut's position, the row count and the body's SHA-256, and is signed with the audit key
(Ed25519, key id ``audit-signing-key`` in the key store), so anyone can check a file with
OpenSSL alone. Ed25519 signatures are deterministic: the manifest is reproducible too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.adapters.resources import Closeable
from domain.adapters.settings import Settings
from domain.application.ports import Keys
from domain.audit.checkpoints import audit_signing_key
from domain.model.errors import ValidationError
from projections.audit.logcut import At, Cut, LogReader, iso, parse_at, parse_time
from projections.audit.report_context import Context, Row, Selection, Table
from projections.audit.report_formats import ReportFormat, encode
from projections.audit.report_kinds import ReportKind, build_table
from projections.audit.report_manifest import ReportManifest, sign_manifest, verify_manifest

__all__ = [
    "MAX_DAYS",
    "PERIOD_KINDS",
    "ByteSink",
    "ReportFormat",
    "ReportKind",
    "ReportManifest",
    "ReportParameters",
    "ReportStream",
    "open_report",
    "parse_format",
    "parse_kind",
    "parse_parameters",
    "verify_manifest",
    "write_report",
]

DEFAULT_DAYS = 30
MAX_DAYS = 36525
PERIOD_KINDS = frozenset(
    {ReportKind.ISSUANCE, ReportKind.REVOCATIONS, ReportKind.QUOTA_LEDGER, ReportKind.ACTIVITY}
)


class ByteSink(Protocol):
    """Where :func:`write_report` writes: a binary file, a socket wrapper, a hash."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class ReportParameters:
    """What a report covers. ``start`` (inclusive) and ``end`` (exclusive) bound the
    period of ``issuance``, ``revocations``, ``quota-ledger`` and ``activity`` (the API's
    ``from`` and ``to``; an ``end`` not after ``start`` is an empty period, no error);
    ``days`` is the horizon of ``expiring`` (30 if None); ``ca_id`` narrows every kind
    to a CA and, for a root, its intermediates."""

    at: At = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    ca_id: UUID | None = None
    days: int | None = None

    def check(self, kind: ReportKind) -> Selection:
        """The selection for ``kind``; ValidationError naming the API's field if a
        parameter is malformed or does not apply to ``kind``."""
        for name, moment in (("from", self.start), ("to", self.end)):
            if moment is None:
                continue
            if kind not in PERIOD_KINDS:
                raise ValidationError(
                    f"{name} does not apply to the {kind} report; leave it out.", field=name
                )
            if moment.tzinfo is None:
                raise ValidationError(f"{name} must be a time with a zone.", field=name)
        if self.days is not None and kind is not ReportKind.EXPIRING:
            raise ValidationError(
                f"days applies to the expiring report only, not to {kind}; leave it out.",
                field="days",
            )
        days = DEFAULT_DAYS if self.days is None else self.days
        if isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_DAYS}.", field="days")
        return Selection(self.start, self.end, self.ca_id, days)

    def to_json(self) -> dict[str, Any]:
        """The parameters as given (the API's names), for the manifest."""
        at = iso(self.at) if isinstance(self.at, dt.datetime) else self.at
        return {
            "at": at,
            "from": iso(self.start),
            "to": iso(self.end),
            "ca_id": None if self.ca_id is None else str(self.ca_id),
            "days": self.days,
        }


def parse_parameters(
    *,
    at: str | None = None,
    start: str | None = None,
    end: str | None = None,
    ca_id: str | None = None,
    days: str | int | None = None,
) -> ReportParameters:
    """Parameters from text (query strings, command-line options; ``days`` may come read
    already); ValidationError naming the field (``at``, ``from``, ``to``, ``ca_id``,
    ``days``) if one cannot be read."""
    return ReportParameters(
        at=None if at is None else parse_at(at),
        start=None if start is None else parse_time(start, "from"),
        end=None if end is None else parse_time(end, "to"),
        ca_id=None if ca_id is None else _parse_uuid(ca_id),
        days=days if days is None or isinstance(days, int) else _parse_days(days),
    )


def parse_kind(text: str) -> ReportKind:
    """The report kind named ``text``; ValidationError (field "kind") otherwise."""
    try:
        return ReportKind(text)
    except ValueError:
        names = ", ".join(kind.value for kind in ReportKind)
        raise ValidationError(f"kind must be one of {names}; got {text!r}.", field="kind") from None


def parse_format(text: str) -> ReportFormat:
    """The format named ``text`` (csv or json); ValidationError (field "format") otherwise."""
    try:
        return ReportFormat(text)
    except ValueError:
        raise ValidationError(
            f"format must be csv or json; got {text!r}.", field="format"
        ) from None


class ReportStream(Closeable):
    """A report being written: iterate for the body's chunks; then :attr:`manifest`.

    Everything that can fail on the request's input (parameters, the cut, ``ca_id``) or on
    key custody fails in :func:`open_report`, before the first byte. Close it (or use it as
    a context manager) if the body is not read to the end.
    """

    def __init__(
        self,
        resources: ExitStack,
        kind: ReportKind,
        fmt: ReportFormat,
        parameters: ReportParameters,
        cut: Cut,
        table: Table,
        signer: Ed25519PrivateKey,
    ) -> None:
        self.kind = kind
        self.format = fmt
        self.parameters = parameters
        self.cut = cut
        self._resources = resources
        self._body = encode(fmt, table.columns, self._counted(table.rows))
        self._signer = signer
        self._rows = 0
        self._digest = hashlib.sha256()
        self._manifest: ReportManifest | None = None

    @property
    def media_type(self) -> str:
        return self.format.media_type

    @property
    def filename(self) -> str:
        """A name for the file: kind and cut position, so two cuts never share a name."""
        return f"pca-{self.kind.value}-at-{self.cut.position}.{self.format.value}"

    def _counted(self, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            self._rows += 1
            yield row

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._digest.update(chunk)
                yield chunk
            self._manifest = self._sign()
        finally:
            self.close()

    @property
    def manifest(self) -> ReportManifest:
        """The signed manifest; RuntimeError until the whole body was read."""
        if self._manifest is None:
            raise RuntimeError("the manifest is known once the whole report was read")
        return self._manifest

    def close(self) -> None:
        """Release the log reader and the key store; safe to call twice."""
        self._resources.close()

    def _sign(self) -> ReportManifest:
        return sign_manifest(
            self._signer,
            self.kind,
            self.format,
            self.parameters.to_json(),
            self.cut,
            self._rows,
            self._digest.hexdigest(),
        )


def open_report(
    settings: Settings,
    kind: ReportKind,
    fmt: ReportFormat,
    parameters: ReportParameters,
    *,
    keystore: Keys | None = None,
) -> ReportStream:
    """Start the report ``kind`` of ``settings``'s log in ``fmt``.

    Raises ValidationError (with ``field``) for parameters that are malformed or do not
    apply to ``kind``, a cut outside the log, or a ``ca_id`` unknown at the cut. Signs with
    the audit key from ``keystore`` (else the key store of ``settings``, opened and closed
    here), creating the key on first use.
    """
    selection = parameters.check(kind)
    resources = ExitStack()
    try:
        store = keystore or resources.enter_context(closing(settings.open_keystore()))
        signer = audit_signing_key(store)
        reader = resources.enter_context(LogReader.open(settings))
        cut = reader.cut(parameters.at)
        context = Context.gather(reader, cut, selection.ca_id)
        table = build_table(kind, reader, context, selection)
    except BaseException:
        resources.close()
        raise
    return ReportStream(resources, kind, fmt, parameters, cut, table, signer)


def write_report(
    settings: Settings,
    kind: ReportKind,
    fmt: ReportFormat,
    parameters: ReportParameters,
    out: ByteSink,
    *,
    keystore: Keys | None = None,
) -> ReportManifest:
    """Write the report to ``out`` and return its signed manifest (see :func:`open_report`)."""
    with open_report(settings, kind, fmt, parameters, keystore=keystore) as stream:
        for chunk in stream:
            out.write(chunk)
        return stream.manifest


def _parse_uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ValidationError(
            f"ca_id must be a CA id (a UUID); got {text!r}.", field="ca_id"
        ) from None


def _parse_days(text: str) -> int:
    if not text.strip().isdigit():
        raise ValidationError(f"days must be a whole number of days; got {text!r}.", field="days")
    return int(text)
