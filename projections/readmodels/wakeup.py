"""Waking the runner from another process on SQLite: a FIFO in the data directory.

On PostgreSQL every commit's ``NOTIFY`` wakes the runner. SQLite has nothing alike, so the
runner polls, and a query waiting for a position in a process without the runner (another
`pca serve` worker, a `pca` command) would wait for the next poll. Instead it writes a
byte to ``readmodels.wake``, which the runner reads on a thread of its own and answers by
looking at the log at once. Nobody reading is not an error: the write is skipped (ENXIO),
and the runner, whenever it comes, starts from the log anyway.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

WAKE_FIFO = "readmodels.wake"
_POLL_SECONDS = 0.5  # how soon the listener notices it should stop
_READ_SIZE = 4096

logger = logging.getLogger(__name__)


def wake_runner(fifo: Path) -> None:
    """Ask the runner listening on ``fifo``, in whichever process, to look at the log now."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no runner listens; ENOENT: none ever did
        return
    try:
        os.write(fd, b"!")
    except BlockingIOError:
        pass  # the pipe is full of wake-ups the runner has yet to read: it is awake
    finally:
        os.close(fd)


class FifoListener:
    """While entered, calls ``wake`` whenever a byte arrives on ``fifo`` (made if missing)."""

    def __init__(self, fifo: Path, wake: Callable[[], None]) -> None:
        self._fifo = fifo
        self._wake = wake
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, name="pca-readmodels-wake", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _listen(self) -> None:
        with ExitStack() as descriptors:
            try:
                self._make()
                reader = self._open(descriptors, os.O_RDONLY)
                # A writer of our own keeps the FIFO from reporting end-of-file between
                # wake-ups.
                self._open(descriptors, os.O_WRONLY)
            except OSError:
                logger.exception("cannot listen on %s; waits elsewhere end at polls", self._fifo)
                return
            while not self._done.is_set():
                ready, _, _ = select.select([reader], [], [], _POLL_SECONDS)
                if ready:
                    os.read(reader, _READ_SIZE)
                    self._wake()

    def _make(self) -> None:
        try:
            os.mkfifo(self._fifo, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.stat(self._fifo).st_mode):
                raise OSError(errno.EEXIST, "not a FIFO", str(self._fifo)) from None

    def _open(self, descriptors: ExitStack, mode: int) -> int:
        fd = os.open(self._fifo, mode | os.O_NONBLOCK)
        descriptors.callback(os.close, fd)
        return fd
