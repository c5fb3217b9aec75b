"""The signed manifest of a compliance report: what the body is (kind, parameters, cut,
row count, SHA-256), signed with the audit key (Ed25519), so anyone can check a report
with the public key alone. docs/AUDIT.md describes the signed text for readers."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_public_key,
)

from domain.audit.checkpoints import AUDIT_KEY_ID
from domain.pki.x509 import public_key_pem
from projections.audit.logcut import Cut, iso
from projections.audit.report_formats import ReportFormat
from projections.audit.report_kinds import ReportKind

GENERATED_FROM = "event log"
MANIFEST_LABEL = "pca-report-manifest/v1"


@dataclass(frozen=True)
class ReportManifest:
    """What a report body is, signed: anyone can check it with the public key alone."""

    kind: ReportKind
    format: ReportFormat
    parameters: dict[str, Any]
    at_position: int
    at_time: dt.datetime | None
    generated_from: str
    row_count: int
    sha256: str
    signature_b64: str
    key_id: str
    public_key_pem: str
    algorithm: str = "Ed25519"

    @property
    def message(self) -> bytes:
        """The exact bytes that were signed (see docs/AUDIT.md)."""
        return manifest_message(
            self.kind,
            self.format,
            self.parameters,
            self.at_position,
            self.at_time,
            self.row_count,
            self.sha256,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as published next to the report, signed message included."""
        return {
            "kind": self.kind.value,
            "format": self.format.value,
            "parameters": self.parameters,
            "at_position": self.at_position,
            "at_time": iso(self.at_time),
            "generated_from": self.generated_from,
            "row_count": self.row_count,
            "sha256": self.sha256,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "public_key_pem": self.public_key_pem,
            "message": self.message.decode("ascii"),
            "signature": self.signature_b64,
        }


def manifest_message(
    kind: ReportKind,
    fmt: ReportFormat,
    parameters: dict[str, Any],
    at_position: int,
    at_time: dt.datetime | None,
    row_count: int,
    sha256: str,
) -> bytes:
    """The version-1 signed text: one ``name=value`` line each, in this order."""
    lines = (
        MANIFEST_LABEL,
        f"kind={kind.value}",
        f"format={fmt.value}",
        f"parameters={json.dumps(parameters, sort_keys=True, separators=(',', ':'))}",
        f"at_position={at_position}",
        f"at_time={iso(at_time) or ''}",
        f"generated_from={GENERATED_FROM}",
        f"row_count={row_count}",
        f"sha256={sha256}",
    )
    return ("\n".join(lines) + "\n").encode("ascii")


def verify_manifest(
    manifest: ReportManifest, body_sha256: str, trusted: Ed25519PublicKey | None = None
) -> bool:
    """True if ``body_sha256`` (hex) is the manifest's and its signature holds, under
    ``trusted`` if given (else under the key the manifest names)."""
    key = trusted or load_pem_public_key(manifest.public_key_pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey) or body_sha256.lower() != manifest.sha256:
        return False
    try:
        key.verify(base64.b64decode(manifest.signature_b64), manifest.message)
    except InvalidSignature:
        return False
    return True


def sign_manifest(
    signer: Ed25519PrivateKey,
    kind: ReportKind,
    fmt: ReportFormat,
    parameters: dict[str, Any],
    cut: Cut,
    row_count: int,
    sha256: str,
) -> ReportManifest:
    """The manifest of a body of ``row_count`` rows hashing to ``sha256`` (hex), read up
    to ``cut``, signed by ``signer``."""
    message = manifest_message(kind, fmt, parameters, cut.position, cut.time, row_count, sha256)
    return ReportManifest(
        kind=kind,
        format=fmt,
        parameters=parameters,
        at_position=cut.position,
        at_time=cut.time,
        generated_from=GENERATED_FROM,
        row_count=row_count,
        sha256=sha256,
        signature_b64=base64.b64encode(signer.sign(message)).decode("ascii"),
        key_id=AUDIT_KEY_ID,
        public_key_pem=public_key_pem(signer.public_key()),
    )
