"""`pca` commands that run the background jobs by hand: the read-model runner (follow or
rebuild the log) and CRL publishing, with the CRLs being served."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from cryptography import x509

from api.cli.commands import Session
from api.cli.output import Row
from api.deployment import FRESHNESS_WAIT_SECONDS
from domain.model.errors import NotFoundError
from domain.model.publication import issuer_scope
from domain.pki.x509 import PublicationURLs
from projections.errors import ReadModelsBehindError, RunnerActiveError
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up, rebuild, run_forever
from projections.revocation.crlstore import BASE, DELTA, StoredCRL


def fresh_read_models(session: Session) -> ReadModels:
    """The deployment's read models once they include every write acknowledged so far, the
    guarantee an HTTP query has by default: caught up here, or by the runner that holds the
    lease (``pca serve`` or ``pca projections run``). ReadModelsBehindError when that
    runner has not got there within the bound."""
    with contextlib.suppress(RunnerActiveError):  # then the active runner catches up
        catch_up(session.settings)
    if not session.deployment.caught_up():
        raise ReadModelsBehindError(
            f"The read models have not caught up with the log within "
            f"{FRESHNESS_WAIT_SECONDS:g} s; check that 'pca serve' or 'pca projections run' "
            "is running, then retry."
        )
    return session.deployment.read_models


def run_projections(session: Session, args: argparse.Namespace) -> list[Row]:
    """Follow the log until SIGTERM or SIGINT. The command opens its deployment with the
    CRL publisher and audit checkpoints running, so this one process does what
    ``pca serve --api-only`` workers leave out."""
    del args
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_forever(session.settings, stop)
    return [{"stopped_at_position": session.deployment.read_models.position()}]


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
    """Cut and publish a new base CRL (and an empty delta) for each key of one CA now."""
    fresh_read_models(session)
    published = session.deployment.publisher.publish(args.id, force_base=True)
    return [
        {
            "ca_id": str(item.ca_id),
            "kind": item.kind,
            "number": item.number,
            "entries": item.entries,
            "generation": item.generation,
        }
        for item in published
    ]


def show_crl(session: Session, args: argparse.Namespace) -> list[Row]:
    """The base and delta CRL being served for each key of one CA."""
    rows = []
    for generation in session.service.get_ca(args.id).generations:
        scope = issuer_scope(args.id, generation.number)
        served = [session.deployment.crls.get(scope, kind) for kind in (BASE, DELTA)]
        urls = session.service.publication_urls(args.id, generation.number)
        rows += [_crl_row(crl, urls) for crl in served if crl is not None]
    if not rows:
        raise NotFoundError(
            f"No CRL has been published for CA {args.id} yet; run "
            "'pca crl publish' or start 'pca serve'."
        )
    return rows


def _crl_row(crl: StoredCRL, urls: PublicationURLs) -> Row:
    return {
        "kind": crl.kind,
        "number": crl.number,
        "entries": len(x509.load_der_x509_crl(crl.der)),
        "this_update": crl.this_update.isoformat(),
        "next_update": crl.next_update.isoformat(),
        "bytes": len(crl.der),
        "sha256": crl.sha256,
        "url": urls.crl if crl.kind == BASE else urls.delta_crl,
    }
