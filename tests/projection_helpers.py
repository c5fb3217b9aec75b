"""Helpers for the read-model tests: a representative history, and everything a user can
read from the read models, gathered into one comparable value."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate, certificate_id
from domain.model.values import (
    SAN,
    CertificateType,
    KeyAlgorithm,
    RequestContext,
    RevocationReason,
    SANType,
    Subject,
)
from projections.readmodels.models import (
    CAView,
    CertificateFilter,
    CertificateView,
    RevocationEntry,
)
from projections.readmodels.queries import ReadModels
from tests.builders import (
    ADMIN,
    client_request,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)

REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class History:
    """What :func:`write_history` made, by role."""

    root_id: UUID
    issuing_id: UUID
    retired_id: UUID
    server_ids: tuple[UUID, ...]
    client_id: UUID
    revoked_id: UUID
    deleted_id: UUID
    last_position: int


def write_history(service: PrivateCA) -> History:
    """A root with two intermediates and every kind of event the read models show.

    The issuing intermediate ends with 20 - 6 = 14 units left, four issued certificates
    (three server, one client), one revoked and one deleted; the retired intermediate
    issued one certificate and was then revoked. The root bought 50 + 10 and assigned 25.
    """
    root_id = enabled_root(service, quota=50)
    issuing_id = enabled_intermediate(service, root_id, remaining=20)
    retired_id = enabled_intermediate(service, root_id, remaining=5)
    server_ids = tuple(
        issue(service, issuing_id, server_request(f"app{n}.example.com")).certificate.id
        for n in range(3)
    )
    client_id = issue(service, issuing_id, client_request("dev@example.com")).certificate.id
    revoked_id = issue(service, issuing_id, server_request("old.example.com")).certificate.id
    service.revoke_certificate(ADMIN, revoked_id, RevocationReason.KEY_COMPROMISE)
    deleted_id = issue(service, issuing_id, server_request("gone.example.com")).certificate.id
    service.revoke_certificate(ADMIN, deleted_id, RevocationReason.SUPERSEDED)
    service.delete_certificate(ADMIN, deleted_id)
    issue(service, retired_id, server_request("legacy.example.com"))
    service.revoke_ca(ADMIN, retired_id, RevocationReason.CA_COMPROMISE)
    service.disable_ca(ADMIN, issuing_id)
    service.enable_ca(ADMIN, issuing_id)
    service.renew_ca(ADMIN, issuing_id, 30)
    last = service.purchase_quota(ADMIN, root_id, 10)
    return History(
        root_id=root_id,
        issuing_id=issuing_id,
        retired_id=retired_id,
        server_ids=server_ids,
        client_id=client_id,
        revoked_id=revoked_id,
        deleted_id=deleted_id,
        last_position=last.position,
    )


def issue_many(service: PrivateCA, ca_id: UUID, count: int, prefix: str = "host") -> list[UUID]:
    """``count`` server certificates named ``{prefix}{n}.example.com``, oldest first."""
    return [
        issue(service, ca_id, server_request(f"{prefix}{n}.example.com")).certificate.id
        for n in range(count)
    ]


def logged_certificate(
    ctx: RequestContext,
    ca: CertificateAuthority,
    serial: str,
    name_and_san: tuple[str, SAN],
    validity: tuple[dt.datetime, int],
    der: bytes,
) -> Certificate:
    """A certificate as a log from before group commit holds it, without the signing: the
    issuer's ``QuotaConsumed`` (triggered on ``ca``) and the ``CertificateIssued`` of a
    certificate named ``name_and_san[0]``, valid ``validity[1]`` days from ``validity[0]``,
    a client certificate unless its SAN is a DNS name. Saving ``ca`` with it records both.
    """
    name, san = name_and_san
    not_before, days = validity
    new_id = certificate_id(ca.id, serial)
    ca.trigger_event(
        ca.QuotaConsumed,
        actor=ctx.actor,
        request_id=ctx.request_id,
        certificate_id=new_id,
        serial_number=serial,
    )
    certificate: Certificate = Certificate._create(
        Certificate.CertificateIssued,
        id=new_id,
        actor=ctx.actor,
        request_id=ctx.request_id,
        ca_id=ca.id,
        serial_number=serial,
        type=CertificateType.SERVER if san.type is SANType.DNS else CertificateType.CLIENT,
        name=name,
        subject=Subject(name, organization="Example Corp"),
        sans=[san],
        key_algorithm=KeyAlgorithm.EC_P256,
        key_id=None,
        include_crl=True,
        not_before=not_before,
        not_after=not_before + dt.timedelta(days=days),
        certificate_der=der,
    )
    return certificate


@dataclass(frozen=True)
class Everything:
    """All a user can read from the read models at one moment."""

    position: int
    cas: tuple[CAView, ...]
    certificates: tuple[CertificateView, ...]
    revocations: tuple[tuple[UUID, tuple[RevocationEntry, ...]], ...]


def read_everything(settings: Settings, now: dt.datetime) -> Everything:
    """Every CA, every listed certificate (paged through) and every revocation index."""
    with ReadModels.open(settings) as read_models:
        cas = tuple(read_models.list_cas(now))
        return Everything(
            position=read_models.position(),
            cas=cas,
            certificates=tuple(list_all(read_models, CertificateFilter(), now, limit=2)),
            revocations=tuple((ca.id, tuple(read_models.revoked_serials(ca.id))) for ca in cas),
        )


def list_all(
    read_models: ReadModels,
    certificate_filter: CertificateFilter,
    now: dt.datetime,
    limit: int = 50,
) -> list[CertificateView]:
    """Every certificate matching ``certificate_filter``, walking the pages."""
    items: list[CertificateView] = []
    cursor: str | None = None
    while True:
        page = read_models.list_certificates(certificate_filter, now, limit, cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def common_names(
    read_models: ReadModels, certificate_filter: CertificateFilter, now: dt.datetime
) -> list[str]:
    """The common names of every matching certificate, newest first."""
    return [view.common_name for view in list_all(read_models, certificate_filter, now)]


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment under which a worker process finds the same ``settings``."""
    env = dict(os.environ)
    env["PCA_DATA_DIR"] = str(settings.data_dir)
    env["PYTHONPATH"] = str(REPOSITORY)
    if settings.database_url is not None:
        env["PCA_DATABASE_URL"] = settings.database_url
        env["PCA_DATABASE_SCHEMA"] = settings.database_schema
    return env
