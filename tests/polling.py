"""Waiting in tests for what background threads and other processes do."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """Whether ``condition`` came true within ``seconds``, asked every ``every`` seconds
    and once more at the end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
