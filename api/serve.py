"""`pca serve`: the API under gunicorn with several worker processes.

The data directory (or the PostgreSQL schema) is initialised once in the parent before
workers start, so first start never races. Each worker builds its own app after the fork:
SQLite connections and thread pools must not cross a fork.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from api.app import create_app
from domain.settings import Settings, open_service

logger = logging.getLogger(__name__)


class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.settings)


def initialise(settings: Settings) -> None:
    """Create the stores and keys of an empty deployment, once, before any worker."""
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


def serve(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    """Run the API until interrupted."""
    initialise(settings)
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
    }
    _Server(settings, options).run()
