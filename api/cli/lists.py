"""`pca` commands that read the read models: lists, and running or rebuilding them."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from uuid import UUID

from cryptography import x509

from api.cli.commands import Session
from api.cli.output import Row
from api.presenters import ca_view_shape, certificate_summary
from api.serve import background_publishing
from domain.application.service import PrivateCA
from domain.model.errors import NotFoundError
from domain.model.tokens import ApiToken
from domain.model.values import CertificateType
from domain.pki.x509 import PublicationURLs
from projections.audit.history import MAX_LIMIT, HistoryFilter, read_history
from projections.errors import RunnerActiveError
from projections.readmodels.models import CertificateFilter, CertificateViewStatus
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up, catch_up_to_head, rebuild, run_forever
from projections.revocation.crlstore import BASE, DELTA, open_crl_store
from projections.revocation.publisher import CRLPublisher, PublishingConfig

FRESHNESS_WAIT_SECONDS = 5.0


def _fresh_read_models(session: Session) -> ReadModels:
    """Read models that include everything logged so far: caught up here, or by the
    runner that holds the lease (``pca serve`` or ``pca projections run``)."""
    head = session.service.recorder.max_notification_id() or 0
    with contextlib.suppress(RunnerActiveError):  # then the active runner catches up
        catch_up(session.settings)
    read_models = ReadModels.open(session.settings)
    read_models.wait_for(head, FRESHNESS_WAIT_SECONDS)
    return read_models


def list_cas(session: Session, args: argparse.Namespace) -> list[Row]:
    del args
    with _fresh_read_models(session) as read_models:
        views = read_models.list_cas(session.service.clock())
    rows: list[Row] = []
    for view in views:
        shape = ca_view_shape(view, None)
        rows.append(
            {
                "id": shape["id"],
                "kind": shape["kind"],
                "status": shape["status"],
                "common_name": view.subject.common_name,
                "quota": shape["quota"],
                "certificates": shape["certificates"],
                "not_after": shape["not_after"],
            }
        )
    return rows


def list_certificates(session: Session, args: argparse.Namespace) -> list[Row]:
    certificate_filter = CertificateFilter(
        issuer_id=args.ca_id,
        status=CertificateViewStatus(args.status) if args.status else None,
        type=CertificateType(args.type) if args.type else None,
        text=args.q,
    )
    with _fresh_read_models(session) as read_models:
        page = read_models.list_certificates(
            certificate_filter, session.service.clock(), args.limit, args.cursor
        )
    rows: list[Row] = []
    for view in page.items:
        shape = certificate_summary(view)
        shape["sans"] = [f"{san.type.value}:{san.value}" for san in view.sans]
        rows.append(shape)
    if page.next_cursor:
        sys.stderr.write(f"more: --cursor {page.next_cursor}\n")
    return rows


def run_projections(session: Session, args: argparse.Namespace) -> list[Row]:
    """Follow the log until SIGTERM or SIGINT; publish CRLs and audit checkpoints meanwhile,
    so this one process does what ``pca serve --api-only`` workers leave out."""
    del args
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with background_publishing(session.settings, session.service):
        run_forever(session.settings, stop)
    # The publisher stopped last, after the runner: its last CRLs go into the read models.
    return [{"stopped_at_position": catch_up_to_head(session.settings)}]


def rebuild_projections(session: Session, args: argparse.Namespace) -> list[Row]:
    """Rebuild from the start of the log, with a progress bar on stderr."""
    del args
    processed = rebuild(session.settings, progress=_progress_bar)
    sys.stderr.write("\n")
    return [{"events_processed": processed}]


def _progress_bar(position: int, end: int) -> None:
    width = 40
    done = width if end == 0 else min(width, width * position // end)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {position}/{end} events")
    sys.stderr.flush()


def publish_crl(session: Session, args: argparse.Namespace) -> list[Row]:
    """Cut and publish a new base CRL (and an empty delta) for one CA now."""
    store = open_crl_store(session.settings)
    try:
        with _fresh_read_models(session) as read_models:
            publisher = CRLPublisher(
                session.service, read_models, store, PublishingConfig.from_env(os.environ)
            )
            published = publisher.publish(args.id, force_base=True)
    finally:
        store.close()
    return [
        {
            "ca_id": str(item.ca_id),
            "kind": item.kind,
            "number": item.number,
            "entries": item.entries,
        }
        for item in published
    ]


def show_crl(session: Session, args: argparse.Namespace) -> list[Row]:
    """The base and delta CRL being served for one CA."""
    store = open_crl_store(session.settings)
    try:
        served = [store.get(args.id, kind) for kind in (BASE, DELTA)]
    finally:
        store.close()
    urls = PublicationURLs.for_issuer(session.settings.public_url, str(args.id))
    rows: list[Row] = []
    for crl in served:
        if crl is None:
            continue
        parsed = x509.load_der_x509_crl(crl.der)
        rows.append(
            {
                "kind": crl.kind,
                "number": crl.number,
                "entries": len(parsed),
                "this_update": crl.this_update.isoformat(),
                "next_update": crl.next_update.isoformat(),
                "bytes": len(crl.der),
                "sha256": crl.sha256,
                "url": urls.crl if crl.kind == BASE else urls.delta_crl,
            }
        )
    if not rows:
        raise NotFoundError(
            f"No CRL has been published for CA {args.id} yet; run "
            "'pca crl publish' or start 'pca serve'."
        )
    return rows


def list_tokens(session: Session, args: argparse.Namespace) -> list[Row]:
    """Every API token ever made, oldest first: id (to revoke), name, role and status.

    Read from the log (tokens are few and have no read model); never the token itself,
    which only its creator saw.
    """
    del args
    service, now = session.service, session.service.clock()
    rows: list[Row] = []
    for token_id in _token_ids(service):
        record: object = service.repository.get(token_id)
        assert isinstance(record, ApiToken)
        status = "revoked" if record.revoked else "active" if record.is_current(now) else "expired"
        expires = record.expires_at.isoformat() if record.expires_at else None
        rows.append(
            {
                "id": str(record.id),
                "name": record.name,
                "role": record.role.value,
                "status": status,
                "created_at": record.created_on.isoformat(),
                "expires_at": expires,
            }
        )
    return rows


def _token_ids(service: PrivateCA) -> Iterator[UUID]:
    created = HistoryFilter(types=("TokenCreated",))
    after: int | None = 0
    while after is not None:
        page = read_history(service, after, MAX_LIMIT, created)
        yield from (item.aggregate_id for item in page.items)
        after = page.next_after
