"""One way to hold a resource in a ``with`` block: whoever opens it, closes it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closeable(ABC):
    """A resource used as ``with Thing(...) as thing:``, closed on leaving the block.

    Subclasses say how to close; entering returns the resource itself.
    """

    @abstractmethod
    def close(self) -> None:
        """Release what the resource holds; safe to call once the block is left."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
