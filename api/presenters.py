"""Shapes of CAs, certificates and ACME records as clients see them (the public JSON
contract)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from urllib.parse import quote

from domain.application.service import PrivateCA
from domain.model.acme import AcmeAccount, AcmeDirectory, AcmeOrder
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.certificate_facts import certificate_facts, subject_key_identifier
from domain.model.policy import CertificateProfile
from domain.model.policy_form import policy_data
from domain.model.tokens import ApiToken
from domain.model.values import SAN, CAKind, CertificateStatus, KeyGeneration, Subject
from domain.pki.der import pem
from domain.pki.formats import Download
from projections.audit.history import MAX_LIMIT, HistoryFilter, read_history
from projections.readmodels.models import CAView, CertificateView, KeyGenerationView

Shape = dict[str, object]


def subject_shape(subject: Subject) -> Shape:
    return dataclasses.asdict(subject)


def ca_shape(ca: CertificateAuthority, now: dt.datetime) -> Shape:
    """A CA with its quota: total/assigned/available for a root, remaining/issued otherwise."""
    quota: Shape
    if ca.kind is CAKind.ROOT:
        quota = {
            "total": ca.quota_total,
            "assigned": ca.quota_assigned,
            "available": ca.quota_available,
        }
    else:
        quota = {"remaining": ca.quota_remaining, "issued": ca.issued_count}
    not_after = ca.not_after
    expired = not_after is not None and now >= not_after
    shape: Shape = {
        "id": str(ca.id),
        "kind": ca.kind.value,
        "parent_id": str(ca.parent_id) if ca.parent_id else None,
        "status": "expired" if expired else ca.status.value,
        "subject": subject_shape(ca.subject),
        "key_algorithm": ca.key_algorithm.value,
        "key_storage": ca.key_storage.value if ca.key_id else None,
        "not_before": _iso(ca.not_before),
        "not_after": _iso(not_after),
        "service_until": _iso(ca.service_until),
        "certificate_pem": pem(ca.certificate_der) if ca.certificate_der else None,
        "quota": quota,
        "key_generations": [
            _generation_shape(generation, current=generation.number == ca.generation)
            for generation in ca.generations
        ],
        "link_certificates_pem": [pem(link) for link in ca.link_certificates],
    }
    if ca.name_constraints:  # only constrained intermediates carry the field
        shape["name_constraints"] = {
            "permitted": [_subtree(tree) for tree in ca.name_constraints.permitted],
            "excluded": [_subtree(tree) for tree in ca.name_constraints.excluded],
        }
    return shape


def _generation_shape(generation: KeyGeneration, *, current: bool) -> Shape:
    """One key a CA has had: its number, where it lives and its certificate."""
    facts = certificate_facts(generation.certificate_der)
    ski = subject_key_identifier(generation.certificate_der)
    return {
        "generation": generation.number,
        "key_storage": generation.key.storage.value,
        "serial_number": facts.serial_number,
        "subject_key_identifier": None if ski is None else ski.hex(),
        "not_before": _iso(facts.not_before),
        "not_after": _iso(facts.not_after),
        "current": current,
        "certificate_pem": pem(generation.certificate_der),
    }


def _generation_view_shape(generation: KeyGenerationView) -> Shape:
    """One key a CA has had, as the CA list shows it (no certificate: fetch the CA)."""
    return {
        "generation": generation.generation,
        "key_storage": generation.key_storage.value,
        "serial_number": generation.serial_number,
        "subject_key_identifier": generation.subject_key_identifier,
        "not_before": _iso(generation.not_before),
        "not_after": _iso(generation.not_after),
        "current": generation.current,
        "retired_at": _iso(generation.retired_at),
    }


def _subtree(tree: SAN) -> Shape:
    return {"type": tree.type.value, "value": tree.value}


def certificate_shape(certificate: Certificate, now: dt.datetime) -> Shape:
    """An end-entity certificate as listed and returned after issuance."""
    status = certificate.status.value
    if certificate.status is CertificateStatus.ISSUED and certificate.is_expired(now):
        status = "expired"
    return {
        "id": str(certificate.id),
        "ca_id": str(certificate.ca_id),
        "serial_number": certificate.serial_number,
        "type": certificate.type.value,
        "name": certificate.name,
        "common_name": certificate.subject.common_name,
        "subject": subject_shape(certificate.subject),
        "sans": [{"type": san.type.value, "value": san.value} for san in certificate.sans],
        "key_algorithm": certificate.key_algorithm.value,
        "status": status,
        "not_before": _iso(certificate.not_before),
        "not_after": _iso(certificate.not_after),
        "revoked_at": _iso(certificate.revoked_at),
        "revocation_reason": (
            certificate.revocation_reason.value if certificate.revocation_reason else None
        ),
        "certificate_pem": pem(certificate.certificate_der),
        "profile": certificate.profile,
        "profile_version": certificate.profile_version,
    }


def profile_shape(profile: CertificateProfile) -> Shape:
    """A certificate profile with its whole policy, every rule spelled out."""
    return {
        "name": profile.name,
        "version": profile.version,
        "retired": profile.retired,
        "policy": policy_data(profile.policy),
    }


def ca_view_shape(view: CAView, certificate_pem: str | None) -> Shape:
    """A CA from the read models, in the same shape as :func:`ca_shape` plus its counts."""
    quota: Shape = dataclasses.asdict(view.quota)
    return {
        "id": str(view.id),
        "kind": view.kind.value,
        "parent_id": str(view.parent_id) if view.parent_id else None,
        "status": view.status.value,
        "subject": subject_shape(view.subject),
        "key_algorithm": view.key_algorithm.value,
        "not_before": _iso(view.not_before),
        "not_after": _iso(view.not_after),
        "service_until": _iso(view.service_until),
        "certificate_pem": certificate_pem,
        "quota": quota,
        "certificates": dataclasses.asdict(view.certificates),
        "key_storage": (
            view.key_generations[-1].key_storage.value if view.key_generations else None
        ),
        "key_generations": [_generation_view_shape(key) for key in view.key_generations],
    }


def certificate_summary(view: CertificateView) -> Shape:
    """A certificate as a list shows it (no PEM: fetch one certificate for that)."""
    return {
        "id": str(view.id),
        "ca_id": str(view.issuer_id),
        "serial_number": view.serial_number,
        "type": view.type.value,
        "name": view.name,
        "common_name": view.common_name,
        "sans": [{"type": san.type.value, "value": san.value} for san in view.sans],
        "key_algorithm": view.key_algorithm.value,
        "status": view.status.value,
        "not_before": _iso(view.not_before),
        "not_after": _iso(view.not_after),
        "revoked_at": _iso(view.revoked_at),
        "revocation_reason": view.revocation_reason.value if view.revocation_reason else None,
        "requested_by": view.requested_by,
        "issued_at": _iso(view.issued_at),
        "issuer_revoked": view.issuer_revoked_at is not None,
    }


def content_disposition(download: Download) -> str:
    """``attachment`` with the safe ASCII name, plus RFC 6266's ``filename*`` (RFC 8187
    UTF-8) when the certificate's own name differs from it (a non-ASCII name)."""
    value = f'attachment; filename="{download.filename}"'
    shown = download.display_filename
    if shown and shown != download.filename:
        value += f"; filename*=UTF-8''{quote(shown, safe='')}"
    return value


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def token_records(service: PrivateCA) -> Iterator[ApiToken]:
    """Every API token ever made, oldest first, read from the log (tokens are few and
    have no read model)."""
    created = HistoryFilter(types=("TokenCreated",))
    after: int | None = 0
    while after is not None:
        page = read_history(service, after, MAX_LIMIT, created)
        for item in page.items:
            record: object = service.repository.get(item.aggregate_id)
            assert isinstance(record, ApiToken)
            yield record
        after = page.next_after


def token_shape(record: ApiToken, now: dt.datetime) -> Shape:
    """A token's record: id (to revoke), name, role, scope and status; never the token,
    which only its creator saw."""
    status = "revoked" if record.revoked else "active" if record.is_current(now) else "expired"
    return {
        "id": str(record.id),
        "name": record.name,
        "role": record.role.value,
        "cas": [str(ca_id) for ca_id in record.scope.ca_ids],
        "profiles": list(record.scope.profiles),
        "status": status,
        "created_at": record.created_on.isoformat(),
        "expires_at": _iso(record.expires_at),
    }


def acme_directory_shape(directory: AcmeDirectory, public_url: str) -> Shape:
    """An ACME directory as operators see it, with the URL clients are given."""
    return {
        "name": directory.name,
        "ca_id": str(directory.ca_id),
        "profile": directory.profile,
        "eab_required": directory.eab_required,
        "url": f"{public_url}/acme/{directory.name}/directory",
    }


def acme_account_summary(account: AcmeAccount) -> Shape:
    """An ACME account in operator lists (API and CLI)."""
    return {
        "id": str(account.id),
        "status": account.status.value,
        "contact": list(account.contact),
        "eab_kid": account.eab_kid,
        "thumbprint": account.thumbprint,
        "created_at": account.created_on.isoformat(),
    }


def acme_order_summary(order: AcmeOrder, now: dt.datetime) -> Shape:
    """An ACME order in operator lists (API and CLI): who asked for what, and the
    certificate it got."""
    return {
        "id": str(order.id),
        "account_id": str(order.account_id),
        "status": order.status(now).value,
        "identifiers": list(order.identifiers),
        "certificate_id": str(order.certificate_id) if order.certificate_id else None,
        "replaces": order.replaces,
        "created_at": order.created_on.isoformat(),
    }
