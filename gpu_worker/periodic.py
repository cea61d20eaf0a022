"""A background task that runs every few seconds while a `with` block does the real work."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class PeriodicTask(ABC):
    """`tick()` every `interval_s` on a daemon thread; a failing tick is logged and the next one still runs."""

    def __init__(self, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @abstractmethod
    def tick(self) -> None: ...

    def finish(self) -> None:  # noqa: B027 (optional hook, a no-op unless overridden)
        """Runs once after the thread has stopped (errors propagate here)."""

    def log_context(self) -> dict[str, str]:
        return {}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # the work in the `with` block matters more; finish() reports for real
                log.exception("%s failed", self._thread.name, extra=self.log_context())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.finish()
