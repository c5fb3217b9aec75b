"""Handlers behind the `pca` commands: parse nothing, call the service, return rows."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from api.cli.output import Row
from api.deployment import Deployment
from api.presenters import ca_shape, certificate_shape
from domain.adapters.settings import Settings
from domain.application.commands import (
    CAProfile,
    ca_name_constraints,
    ca_profile,
    certificate_request,
)
from domain.application.service import PrivateCA
from domain.model.errors import ValidationError
from domain.model.tokens import Role
from domain.model.values import (
    CAKind,
    KeyStorage,
    RequestContext,
    RevocationReason,
    Subject,
    TokenScope,
)
from domain.pki.formats import DownloadOptions, parse_format
from projections.audit.logcut import parse_time


@dataclass(frozen=True)
class Session:
    """The deployment and who is acting, for one command."""

    deployment: Deployment
    context: RequestContext

    @property
    def service(self) -> PrivateCA:
        return self.deployment.service

    @property
    def settings(self) -> Settings:
        return self.deployment.settings


def _subject(args: argparse.Namespace) -> Subject:
    return Subject(
        args.common_name,
        args.organization,
        args.organizational_unit,
        args.locality,
        args.state,
        args.country,
    )


def _profile(args: argparse.Namespace, kind: CAKind) -> CAProfile:
    return ca_profile(
        kind, _subject(args), args.key_algorithm, args.validity_years, args.service_days
    )


def _ca_row(session: Session, ca_id: UUID) -> list[Row]:
    shape = ca_shape(session.service.get_ca(ca_id), session.service.clock())
    shape.pop("certificate_pem")
    shape.pop("link_certificates_pem")
    shape["key_generations"] = generations_text(shape["key_generations"])
    subject = shape.pop("subject")
    assert isinstance(subject, dict)
    shape["common_name"] = subject["common_name"]
    return [shape]


def generations_text(generations: object) -> str:
    """A CA's ``key_generations`` on one line: number, storage, certificate serial and end,
    the current key marked with ``*`` (``pca ca show`` and ``pca ca list``)."""
    if not isinstance(generations, list):
        raise TypeError("key_generations is a list")
    return ", ".join(
        f"{g['generation']}{'*' if g['current'] else ''} ({g['key_storage']}, "
        f"serial {g['serial_number']}, until {g['not_after']})"
        for g in generations
    )


def _certificate_row(session: Session, certificate_id: UUID) -> list[Row]:
    shape = certificate_shape(
        session.service.get_certificate(certificate_id), session.service.clock()
    )
    for verbose in ("certificate_pem", "subject"):
        shape.pop(verbose)
    shape["sans"] = [f"{san['type']}:{san['value']}" for san in shape["sans"]]  # type: ignore[attr-defined]
    return [shape]


def create_root(session: Session, args: argparse.Namespace) -> list[Row]:
    outcome = session.service.create_root(
        session.context, _profile(args, CAKind.ROOT), args.included_certificates
    )
    return _ca_row(session, outcome.id)


def create_intermediate(session: Session, args: argparse.Namespace) -> list[Row]:
    profile = _profile(args, CAKind.INTERMEDIATE)
    constraints = ca_name_constraints(
        CAKind.INTERMEDIATE,
        [_split_san(raw, "permit") for raw in args.permit],
        [_split_san(raw, "exclude") for raw in args.exclude],
    )
    outcome = session.service.create_intermediate(
        session.context, args.parent, profile, name_constraints=constraints
    )
    return _ca_row(session, outcome.id)


def enable_ca(session: Session, args: argparse.Namespace) -> list[Row]:
    storage = KeyStorage(args.key_storage)
    return _ca_row(session, session.service.enable_ca(session.context, args.id, storage).id)


def disable_ca(session: Session, args: argparse.Namespace) -> list[Row]:
    return _ca_row(session, session.service.disable_ca(session.context, args.id).id)


def renew_ca(session: Session, args: argparse.Namespace) -> list[Row]:
    outcome = session.service.renew_ca(session.context, args.id, args.service_days)
    return _ca_row(session, outcome.id)


def retire_ca_key(session: Session, args: argparse.Namespace) -> list[Row]:
    outcome = session.service.retire_ca_key(session.context, args.id, args.generation)
    return _ca_row(session, outcome.id)


def roll_over_ca_key(session: Session, args: argparse.Namespace) -> list[Row]:
    return _ca_row(session, session.service.roll_over_ca_key(session.context, args.id).id)


def revoke_ca(session: Session, args: argparse.Namespace) -> list[Row]:
    reason = RevocationReason(args.reason)
    return _ca_row(session, session.service.revoke_ca(session.context, args.id, reason).id)


def show_ca(session: Session, args: argparse.Namespace) -> list[Row]:
    return _ca_row(session, args.id)


def purchase_quota(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.purchase_quota(session.context, args.root_id, args.count)
    return _ca_row(session, args.root_id)


def assign_quota(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.assign_quota(session.context, args.root_id, args.intermediate, args.remaining)
    return _ca_row(session, args.root_id) + _ca_row(session, args.intermediate)


def issue_certificate(session: Session, args: argparse.Namespace) -> list[Row]:
    request = certificate_request(
        args.type,
        _subject(args),
        args.validity_days,
        not_after=parse_time(args.not_after, "not_after") if args.not_after else None,
        sans=[_split_san(raw) for raw in args.san],
        key_algorithm=args.key_algorithm,
        csr_pem=args.csr.read() if args.csr else None,
        name=args.name,
        include_crl=args.include_crl,
        idempotency_key=args.idempotency_key,
        profile=args.profile,
    )
    issued = session.service.issue_certificate(session.context, args.ca_id, request)
    return _certificate_row(session, issued.certificate.id)


def _split_san(raw: str, flag: str = "san") -> tuple[str, str]:
    kind, separator, value = raw.partition(":")
    if not separator:
        raise ValidationError(
            f"--{flag} takes TYPE:VALUE such as dns:www.example.com; got {raw!r}.", field=flag
        )
    return kind, value


def show_certificate(session: Session, args: argparse.Namespace) -> list[Row]:
    return _certificate_row(session, args.id)


PASSWORD_VARIABLE = "PCA_DOWNLOAD_PASSWORD"  # noqa: S105 - a variable name, not a password


def download_certificate(session: Session, args: argparse.Namespace) -> list[Row]:
    """Write the certificate in ``--format`` into ``--out`` (a directory); key formats need
    ``--password`` (read from PCA_DOWNLOAD_PASSWORD so it stays out of shell history) and
    are recorded as key exports."""
    options = DownloadOptions(os.environ.get(PASSWORD_VARIABLE), not args.no_chain)
    try:
        export = session.service.export_certificate(
            session.context, args.id, parse_format(args.format), options
        )
    except ValidationError as error:
        if error.field != "password":
            raise
        raise ValidationError(  # the CLI takes the password from the environment
            f"{error.detail} Set it in {PASSWORD_VARIABLE} (kept out of shell history), e.g."
            f" read -rs {PASSWORD_VARIABLE} && export {PASSWORD_VARIABLE}",
            field=PASSWORD_VARIABLE,
        ) from None
    out = Path(args.out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = out / export.download.filename
    write_private(target, export.download.body)
    return [{"id": str(args.id), "file": str(target), "bytes": len(export.download.body)}]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, readable by its owner only (0600): it may hold a key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def revoke_certificate(session: Session, args: argparse.Namespace) -> list[Row]:
    reason = RevocationReason(args.reason)
    session.service.revoke_certificate(session.context, args.id, reason)
    return _certificate_row(session, args.id)


def delete_certificate(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.delete_certificate(session.context, args.id)
    return [{"id": str(args.id), "status": "deleted"}]


def rotate_master_key(session: Session, args: argparse.Namespace) -> list[Row]:
    """Rotate on the key store itself: the service signs with keys, it does not manage them."""
    del args
    with session.settings.open_keystore() as keystore:
        new_id, rewritten = keystore.rotate_master_key(session.settings.data_dir)
    return [{"active_master_key": new_id, "keys_re_encrypted": rewritten}]


def create_token(session: Session, args: argparse.Namespace) -> list[Row]:
    scope = TokenScope(tuple(args.ca_ids), tuple(args.profiles))
    token, outcome = session.service.create_token(
        session.context, args.name, Role(args.role), args.valid_days, scope
    )
    return [{"token": token, "id": str(outcome.id), "name": args.name, "role": args.role}]


def revoke_token(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.revoke_token(session.context, args.id)
    return [{"id": str(args.id), "status": "revoked"}]
