"""`pca serve`: the API under granian (a Rust HTTP server speaking WSGI) in several
worker processes.

The data directory (or the PostgreSQL schema) is initialised once in the parent before
workers start, so first start never races. Each worker builds its own app after the fork
(``api.wsgi:create_app(...)``: the HTTP API and the ACME face): SQLite connections and
thread pools must not cross a fork, and the metrics module must be imported only after
``PROMETHEUS_MULTIPROC_DIR`` is set.

Background jobs (the read-model runner, the CRL publisher, audit checkpoints) run on
threads of every worker by default; one worker of the deployment holds each lease and the
others stand by. ``--api-only`` (or ``PCA_API_ONLY=1``) leaves them out of the workers,
for deployments that run them in one ``pca projections run`` process apart.

On SIGTERM (or SIGINT) every worker stops accepting, finishes the requests it holds, then
closes its deployment (:meth:`api.deployment.Deployment.close`: the publisher first, then
the read models' last catch-up) and writes its last access-log lines; a worker still busy
``GRACE_SECONDS`` after the signal is killed. A worker that dies is started again.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys
from contextlib import closing
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.server.mp import MPServer, WorkerProcess
from prometheus_client import multiprocess, values

from api.deployment import EXTENSION, Deployment
from api.wsgi_middleware import AccessLog, TrustedProxyScheme
from domain.adapters.settings import Settings

GRACE_SECONDS = 10
STDOUT = 1


class _App:
    """What one worker serves: the app behind the access log and the proxy's scheme."""

    def __init__(self, background: bool) -> None:
        # Imported by name in the worker, after the fork: the faces are no import of this
        # shared module (import-linter's shared-api-below-faces).
        self.flask = importlib.import_module("api.wsgi").create_app(run_projections=background)
        self.wsgi = AccessLog(TrustedProxyScheme(self.flask), STDOUT)

    def close(self) -> None:
        """Stop the deployment's jobs in order, then write the last access-log lines."""
        try:
            deployment = self.flask.extensions[EXTENSION]
            assert isinstance(deployment, Deployment)
            deployment.close()
        finally:
            self.wsgi.close()
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@WorkerProcess.wrap_target  # type: ignore[untyped-decorator]  # granian's plumbing is untyped
def _worker(worker_id: int, app: _App, sock: Any, ipc: Any, loop: Any, *args: Any) -> None:
    """A worker process: granian's WSGI worker until it has stopped serving, then the close."""
    try:
        MPServer._spawn_wsgi_worker.__wrapped__(worker_id, app.wsgi, sock, ipc, loop, *args)
    finally:
        app.close()


class _Server(MPServer):
    def _respawn_workers(self, workers: list[int], *args: Any, **kwargs: Any) -> None:
        killed = all((self.wrks[idx].inner.exitcode or 0) < 0 for idx in workers)
        super()._respawn_workers(workers, *args, **kwargs)
        if killed:
            # A worker killed by a signal (the OOM killer, an operator) is started again
            # however often it happens; granian's crash-loop guard, which stops the server
            # when a worker dies twice within 5.5 s, stays for workers that fail by
            # themselves (a worker that cannot boot).
            self.respawned_wrks.clear()

    def _stop_workers(self) -> None:
        super()._stop_workers()  # type: ignore[no-untyped-call]
        if self.interrupt_signal:
            # Workers that left on the same SIGTERM before the parent asked them to did
            # what was asked: a graceful stop exits with status 0.
            self.interrupt_children.clear()


def initialise(settings: Settings) -> None:
    """Create the stores, tables and keys of an empty deployment, once, before any worker."""
    with closing(Deployment.open(settings)) as deployment:
        if not deployment.service.recorder.max_notification_id():
            sys.stderr.write(
                "pca: this is a new deployment; create the first token with\n"
                "  pca tokens create --role admin --name YOUR-NAME\n"
            )


def _metrics_directory(settings: Settings) -> None:
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # counters start afresh with the server
    directory.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    # prometheus_client picked its value store when this module imported it, before the
    # variable was set; pick again, or the workers would count in memory that /metrics
    # (which reads the directory) never sees.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    *,
    api_only: bool = False,
) -> None:
    """Run the API until interrupted; ``settings`` must be the ``PCA_*`` environment's,
    which each worker reads again to open its own deployment.

    ``threads`` is the number of requests a worker runs at once. With ``api_only`` (or
    ``settings.api_only``) the workers only answer requests: queries see the read models
    as far as a ``pca projections run`` process has brought them.
    """
    api_only = api_only or settings.api_only
    os.umask(0o077)  # whatever the server and its libraries write is the owner's alone
    initialise(settings)
    _metrics_directory(settings)
    if api_only:
        sys.stderr.write(
            "pca: API only; run 'pca projections run' for the read models, CRLs and "
            "audit checkpoints\n"
        )
    server = _Server(
        "api.wsgi:create_app",  # a name for granian's log; the loader below builds the app
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACE_SECONDS,
    )
    server.serve(
        spawn_target=_worker,
        target_loader=functools.partial(_App, not api_only),  # type: ignore[arg-type]
        wrap_loader=False,
    )
