"""Shapes of CAs, certificates and ACME records as clients see them (the public JSON
contract)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from domain.model.acme import AcmeAccount, AcmeDirectory, AcmeOrder
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.values import CAKind, CertificateStatus, Subject
from domain.pki.der import pem
from projections.readmodels.models import CAView, CertificateView

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
    return {
        "id": str(ca.id),
        "kind": ca.kind.value,
        "parent_id": str(ca.parent_id) if ca.parent_id else None,
        "status": "expired" if expired else ca.status.value,
        "subject": subject_shape(ca.subject),
        "key_algorithm": ca.key_algorithm.value,
        "not_before": _iso(ca.not_before),
        "not_after": _iso(not_after),
        "service_until": _iso(ca.service_until),
        "certificate_pem": pem(ca.certificate_der) if ca.certificate_der else None,
        "quota": quota,
    }


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


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


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
