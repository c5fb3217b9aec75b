"""`pca ocsp-serve`: a dedicated, read-only OCSP responder under uvicorn.

Large CAs answer OCSP from a service apart from the CA's API: it takes the most traffic,
needs no token and must stay up when the API is busy. This one serves OCSP (and the
CRLs and ``/healthz``) of the deployment the ``PCA_*`` environment names, with the bytes
and headers `pca serve` answers, through the same responder; see
:mod:`api.http.ocsp_asgi`, and the protocol that answers plain OCSP before it,
:mod:`api.http.ocsp_protocol`. uvicorn (httptools, uvloop) costs about a quarter of
gunicorn's time per keep-alive request (docs/BENCHMARKS.md, issue 22).

Each worker process opens its own deployment at lifespan startup, without the read-model
runner, CRL publisher or checkpoints: `pca serve` or `pca projections run` keeps those,
and answers never wait for them (the responder reads the event store for what the read
models do not show yet). It writes nothing but what the responder needs: a CA's delegated
responder certificate and key, when there is none in date. SIGTERM stops it after the
requests under way, closing each worker's deployment.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn

from domain.adapters.settings import Settings

APP = "api.http.ocsp_asgi:create_app"
KEEP_ALIVE_SECONDS = 30  # as `pca serve`
GRACEFUL_SECONDS = 10  # as `pca serve`
# uvicorn's settings besides where it listens (the tests run the same).
UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "loop": "uvloop",
    "http": "api.http.ocsp_protocol:OCSPProtocol",  # httptools', plain OCSP answered inline
    "lifespan": "on",
    "access_log": False,  # each worker's AccessLog writes the lines, in batches
    "proxy_headers": False,  # the peer's address is logged, as `pca serve` logs it
    "server_header": False,
    "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    "timeout_graceful_shutdown": GRACEFUL_SECONDS,
}


def serve_ocsp(settings: Settings, host: str, port: int, workers: int) -> None:
    """Answer OCSP on ``host:port`` with ``workers`` processes until SIGTERM or SIGINT;
    refuses a store that holds no deployment (a mistyped ``PCA_DATA_DIR``)."""
    if not settings.holds_deployment():
        raise settings.missing_deployment()
    os.umask(0o077)  # as `pca serve`: what it writes is the owner's alone
    uvicorn.run(APP, host=host, port=port, workers=workers, **UVICORN_OPTIONS)
