"""`pca serve`: the API under gunicorn with several worker processes.

The data directory (or the PostgreSQL schema) is initialised once in the parent before
workers start, so first start never races. Each worker builds its own app after the fork
(``api.wsgi:create_app(...)``: the HTTP API and the ACME face): SQLite connections and
thread pools must not cross a fork, and the metrics module must be imported only after
``PROMETHEUS_MULTIPROC_DIR`` is set.

Background jobs (the read-model runner, the CRL publisher, audit checkpoints) run on
threads of every worker by default; one worker of the deployment holds each lease and the
others stand by. ``--api-only`` (or ``PCA_API_ONLY=1``) leaves them out of the workers,
for deployments that run them in one ``pca projections run`` process apart.

gunicorn's own access log is off: each worker wraps its app in
:class:`api.wsgi_middleware.AccessLog`, which writes the same lines in batches off the
request's path, and writes its last ones when the worker stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from contextlib import closing
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app
from prometheus_client import multiprocess, values

from api.deployment import EXTENSION, Deployment
from api.wsgi_middleware import AccessLog
from domain.adapters.settings import Settings

logger = logging.getLogger(__name__)
STDOUT = 1


class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any], *, background: bool) -> None:
        self.options = options
        self.background = background
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # older gunicorn releases lack some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        # gunicorn's factory syntax: the app module is imported here, in the worker.
        app = import_app(f"api.wsgi:create_app(run_projections={self.background!r})")
        return AccessLog(app, STDOUT)


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


def _worker_exit(server: object, worker: Any) -> None:
    del server
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _close_worker_app(server: object, worker: Any) -> None:
    """In a worker that stops gracefully (SIGTERM, after its last request): stop its
    background jobs in order (:meth:`api.deployment.Deployment.close`), so the read models
    reach the log's head before the process ends. gunicorn also calls this in the master
    for a worker already gone, which has no app there. The access log's last lines are
    written after the deployment has closed."""
    del server
    access_log = getattr(worker, "wsgi", None)
    if not isinstance(access_log, AccessLog):
        return
    try:
        services = getattr(access_log.app, "extensions", {}).get(EXTENSION)
        if services is not None:
            services.close()
    finally:
        access_log.close()


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

    With ``api_only`` (or ``settings.api_only``) the workers only answer requests: queries
    see the read models as far as a ``pca projections run`` process has brought them.
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
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "preload_app": False,
        "accesslog": None,  # AccessLog writes the lines (see above)
        "graceful_timeout": 10,
        "timeout": 60,
        "keepalive": 30,
        "child_exit": _worker_exit,
        "worker_exit": _close_worker_app,
        "control_socket_disable": True,
    }
    _Server(options, background=not api_only).run()
