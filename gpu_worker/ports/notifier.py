"""Notifier port: SNS topic (with message attributes) or log line + optional webhook."""

from __future__ import annotations

from abc import ABC, abstractmethod

from peoplenet_contracts.events import Event


class Notifier(ABC):
    @abstractmethod
    def publish(self, event: Event) -> None:
        """Send the event as JSON with `event.attributes()` as message attributes."""
