"""Local notifier: a JSON log line per event plus an optional webhook POST."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from gpu_worker.ports.notifier import Notifier
from peoplenet_contracts.events import Event

_LOG = logging.getLogger("peoplenet.events")


class LogNotifier(Notifier):
    """Logs each event as one JSON line; POSTs the event JSON to webhook_url when set.

    A failing webhook is logged, never raised: notifications must not fail the job that sends them.
    """

    def __init__(
        self, logger: logging.Logger | None = None, webhook_url: str | None = None, *, timeout_s: float = 5.0
    ) -> None:
        self.logger = logger or _LOG
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s

    def publish(self, event: Event) -> None:
        body = event.model_dump_json()
        self.logger.info(json.dumps({"message": "event", "attributes": event.attributes(), "event": json.loads(body)}))
        if self.webhook_url:
            self._post(body, event.attributes()["event_type"])

    def _post(self, body: str, event_type: str) -> None:
        assert self.webhook_url is not None
        request = urllib.request.Request(
            self.webhook_url,
            data=body.encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", "X-Peoplenet-Event-Type": event_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.logger.warning("webhook %s failed for %s event: %s", self.webhook_url, event_type, exc)
