"""The HTTP status of each branch of the domain's error tree, for every face served over
HTTP (the API's problems, the console's pages)."""

from __future__ import annotations

from domain.model.errors import (
    ConflictError,
    KeyCustodyError,
    LogTamperedError,
    NotFoundError,
    OutOfScopeError,
    PCAError,
    StorageNotDurableError,
    ValidationError,
)

STATUS_BY_ERROR: tuple[tuple[type[PCAError], int], ...] = (
    (ValidationError, 422),
    (OutOfScopeError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (KeyCustodyError, 500),
    (StorageNotDurableError, 500),
    (LogTamperedError, 503),
)
# 5xx errors whose detail is advice for the client rather than an internal matter.
ADVISED: tuple[type[PCAError], ...] = (LogTamperedError,)


def domain_status(error: PCAError) -> int:
    """The status answering ``error``: 500 for a branch not listed."""
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def shown_to_client(error: PCAError) -> bool:
    """Whether ``error``'s detail may be shown: 4xx, or a 5xx that advises the client."""
    return domain_status(error) < 500 or isinstance(error, ADVISED)
