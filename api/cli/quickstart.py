"""`pca quickstart`: the reference product's initial configuration, end to end, once.

Root CA -> enable -> purchase quota -> intermediate CA -> enable -> assign quota ->
server certificate -> download -> client certificate -> revoke.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from uuid import UUID

from api.cli.commands import Session, write_private
from api.cli.output import Row
from domain.adapters.settings import Settings
from domain.application.commands import (
    ca_profile,
    certificate_request,
)
from domain.model.values import (
    CAKind,
    RevocationReason,
    Subject,
)
from domain.pki.der import pem
from domain.pki.formats import DownloadFormat, DownloadOptions

ORG = "Quickstart Org"
ROOT = ca_profile(CAKind.ROOT, Subject("Quickstart Root CA", ORG, country="US"), "EC_P384")
INTERMEDIATE = ca_profile(CAKind.INTERMEDIATE, Subject("Quickstart Issuing CA", ORG, country="US"))
SERVER = certificate_request(
    "server",
    Subject("localhost", ORG),
    90,
    sans=[("dns", "localhost"), ("ip", "127.0.0.1")],
    key_algorithm="EC_P256",
)
CLIENT = certificate_request(
    "client",
    Subject("quickstart-client"),
    30,
    sans=[("email", "client@quickstart.example")],
    key_algorithm="EC_P256",
)


def _store(settings: Settings) -> str:
    if settings.database_url is None:
        return f"{settings.data_dir.resolve()} (PCA_DATA_DIR)"
    return f"PostgreSQL schema {settings.database_schema or 'public'} (PCA_DATABASE_SCHEMA)"


def _step(message: str) -> None:
    sys.stderr.write(f"==> {message}\n")


def run_quickstart(session: Session, args: argparse.Namespace) -> list[Row]:
    """Walk every step once and write the server's files into ``args.out``."""
    service, ctx = session.service, session.context
    out = Path(args.out).resolve()
    _step(f"recording into {_store(session.settings)}; writing files into {out}")
    _step("create and enable a root CA with 10 included certificates")
    root_id = service.create_root(ctx, ROOT, included_certificates=10).id
    service.enable_ca(ctx, root_id)
    _step("purchase 100 more certificates for the root")
    service.purchase_quota(ctx, root_id, 100)
    _step("create and enable an intermediate CA, assign it 20 certificates")
    intermediate_id = service.create_intermediate(ctx, root_id, INTERMEDIATE).id
    service.enable_ca(ctx, intermediate_id)
    service.assign_quota(ctx, root_id, intermediate_id, 20)
    _step("request a server certificate for localhost")
    server = service.issue_certificate(ctx, intermediate_id, SERVER)
    files = _write_server_files(session, out, server.certificate.id)
    _step("request a client certificate, then revoke it")
    client = service.issue_certificate(ctx, intermediate_id, CLIENT).certificate
    service.revoke_certificate(ctx, client.id, RevocationReason.CESSATION_OF_OPERATION)
    return [
        {"step": "root CA", "id": str(root_id), "detail": "enabled, 110 purchased"},
        {"step": "intermediate CA", "id": str(intermediate_id), "detail": "enabled, 20 assigned"},
        {"step": "server certificate", "id": str(server.certificate.id), "detail": files},
        {"step": "client certificate", "id": str(client.id), "detail": "revoked"},
    ]


def _write_server_files(session: Session, out: Path, certificate_id: UUID) -> str:
    """Certificate, chain and a password-protected PKCS#12 (the key never lands in clear);
    the PKCS#12 is a key export like any other, recorded before it is written."""
    service = session.service
    certificate = service.get_certificate(certificate_id)
    intermediate_der, root_der = service.chain_der(certificate.ca_id, certificate.certificate_der)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    (out / "root-ca.pem").write_text(pem(root_der))
    (out / "chain.pem").write_text(pem(intermediate_der) + pem(root_der))
    (out / "server.pem").write_text(pem(certificate.certificate_der))
    (out / "fullchain.pem").write_text(pem(certificate.certificate_der) + pem(intermediate_der))
    password = secrets.token_urlsafe(18)
    bundle = service.export_certificate(
        session.context, certificate_id, DownloadFormat.PKCS12, DownloadOptions(password)
    ).download
    write_private(out / "server.p12", bundle.body)
    write_private(out / "server.p12.password.txt", password.encode() + b"\n")
    return f"{out}/server.pem, fullchain.pem, server.p12 (+ .password.txt)"
