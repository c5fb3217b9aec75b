"""Downloading a certificate: the one use case every face calls.

A download in a format that holds the private key is an export of that key: it is
recorded as ``PrivateKeyExported`` (who, which format) before the file is handed back, so
no key leaves the service unaccounted for, whichever face asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.application.store import Outcome, Store, retry_on_conflict
from domain.model.values import RequestContext
from domain.pki.formats import (
    Download,
    DownloadFormat,
    DownloadMaterial,
    DownloadOptions,
    carries_private_key,
    render_download,
)


@dataclass(frozen=True)
class Export:
    """The file, and the log position of its ``PrivateKeyExported`` event if it holds a key."""

    download: Download
    position: int | None


class Exports:
    """Certificate downloads, recorded when they carry a private key."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def download(
        self,
        ctx: RequestContext,
        certificate_id: UUID,
        file_format: DownloadFormat,
        options: DownloadOptions,
    ) -> Export:
        """The certificate ``certificate_id`` in ``file_format`` with its chain and, if the
        format holds one, its private key; NotFoundError for a deleted certificate,
        ValidationError when the format needs a key the service does not hold or a password.

        The file is rendered first (a refused download records nothing), then a key export
        is recorded, and only then returned.
        """
        certificate = self._store.listed_certificate(certificate_id)
        ctx.scope.check(certificate.ca_id)
        key_id = certificate.key_id if carries_private_key(file_format) else None
        material = DownloadMaterial(
            certificate.name,
            certificate.certificate_der,
            self._store.chain_der(certificate.ca_id, certificate.certificate_der),
            self._store.keys.get(key_id) if key_id is not None else None,
        )
        download = render_download(file_format, material, options)
        if key_id is None:
            return Export(download, None)
        return Export(download, self._record(ctx, certificate_id, file_format).position)

    def _record(
        self, ctx: RequestContext, certificate_id: UUID, file_format: DownloadFormat
    ) -> Outcome:
        """Record who takes the certificate's held private key out, and in which format."""

        def attempt() -> Outcome:
            certificate = self._store.get_certificate(certificate_id)
            certificate.export_key(ctx, file_format.value)
            return self._store.save(certificate_id, certificate)

        return retry_on_conflict(attempt)
