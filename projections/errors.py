"""Errors of the read models, in the domain's error tree.

::

    PCAError
    ├── ConflictError
    │   ├── RunnerActiveError     another runner already serves these read models
    │   └── PositionMovedError    the read models moved while a batch was being applied
    └── ReadModelsBehindError     the read models did not reach the log's head in time
"""

from __future__ import annotations

from domain.model.errors import ConflictError, PCAError


class RunnerActiveError(ConflictError):
    """Raised when a runner or a rebuild starts while another runner serves the read models."""


class PositionMovedError(ConflictError):
    """Raised when a batch's starting position is no longer the read models' position,
    which only a second writer can cause; the batch is rolled back, nothing is applied."""


class ReadModelsBehindError(PCAError):
    """Raised when a query that must include every acknowledged write finds the read models
    still behind the log after its bounded wait: no runner follows the log, or it lags."""
