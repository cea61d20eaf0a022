"""Graceful shutdown: first SIGTERM/SIGINT asks for a safe stop, a second exits at once.

Also polls the EC2 spot interruption notice (IMDSv2) when enabled: a notice is treated like SIGTERM,
giving the two-minute warning to checkpoint and release the message.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import urllib.error
import urllib.request
from types import FrameType

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FORCED = 143  # 128 + SIGTERM: the second signal, no cleanup


class Shutdown:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            log.warning("stop requested: %s; finishing or checkpointing the current stage", reason)
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.requested:
                log.error("second %s: exiting at once", signal.Signals(signum).name)
                os._exit(EXIT_FORCED)
            self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def start_spot_polling(self, metadata_endpoint: str, interval_s: float = 5.0) -> threading.Thread:
        thread = threading.Thread(
            target=self._poll_spot, args=(metadata_endpoint.rstrip("/"), interval_s), daemon=True, name="spot-poll"
        )
        thread.start()
        return thread

    def _poll_spot(self, endpoint: str, interval_s: float) -> None:
        while not self._event.wait(interval_s):
            notice = spot_interruption_notice(endpoint)
            if notice:
                self.request(f"EC2 spot interruption notice: {notice}")


def spot_interruption_notice(endpoint: str, timeout_s: float = 1.0) -> str | None:
    """The instance-action body when AWS has scheduled an interruption, else None (404 or unreachable)."""
    try:
        token_request = urllib.request.Request(
            f"{endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(token_request, timeout=timeout_s) as response:
            token = response.read().decode()
        request = urllib.request.Request(
            f"{endpoint}/latest/meta-data/spot/instance-action", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read().decode() or "scheduled"
    except (urllib.error.URLError, TimeoutError, OSError):
        return None
