"""`pca serve`: the API under gunicorn with several worker processes.

The data directory (or the PostgreSQL schema) is initialised once in the parent before
workers start, so first start never races. Each worker builds its own app after the fork
(``api.app:create_app()``): SQLite connections and thread pools must not cross a fork, and
the metrics module must be imported only after ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app
from prometheus_client import multiprocess

from domain.settings import Settings, open_service
from projections.crlstore import open_crl_store
from projections.queries import ReadModels

logger = logging.getLogger(__name__)


class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # older gunicorn releases lack some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        return import_app("api.app:create_app()")


def initialise(settings: Settings) -> None:
    """Create the stores, tables and keys of an empty deployment, once, before any worker."""
    ReadModels.open(settings).close()
    open_crl_store(settings).close()
    service = open_service(settings)
    try:
        if not service.recorder.max_notification_id():
            sys.stderr.write(
                "pca: this is a new deployment; create the first token with\n"
                "  pca tokens create --role admin --name YOUR-NAME\n"
            )
    finally:
        service.close()
        service.keystore.close()


def _metrics_directory(settings: Settings) -> None:
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # counters start afresh with the server
    directory.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _worker_exit(server: object, worker: Any) -> None:
    del server
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def serve(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    """Run the API until interrupted; ``settings`` must be the ``PCA_*`` environment's."""
    initialise(settings)
    _metrics_directory(settings)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "preload_app": False,
        "accesslog": "-",
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s',
        "graceful_timeout": 10,
        "timeout": 60,
        "keepalive": 30,
        "child_exit": _worker_exit,
        "control_socket_disable": True,
    }
    _Server(options).run()
