"""Errors of the read-model runners, in the domain's error tree (both are conflicts, 409).

::

    ConflictError
    ├── RunnerActiveError   another runner already serves these read models
    └── PositionMovedError  the read models moved while a batch was being applied
"""

from __future__ import annotations

from domain.model.errors import ConflictError


class RunnerActiveError(ConflictError):
    """Raised when a runner or a rebuild starts while another runner serves the read models."""


class PositionMovedError(ConflictError):
    """Raised when a batch's starting position is no longer the read models' position,
    which only a second writer can cause; the batch is rolled back, nothing is applied."""
