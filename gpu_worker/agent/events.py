"""How the agent learns that its channel moved: poll the pointer, or wake on ModelPublished events.

Events only wake the agent up; the channel pointer in the store is always what it installs, so a
lost, duplicated or reordered event can never install the wrong model.

The event queue is the agent's own SQS queue subscribed to the SNS topic with a filter policy on
`event_type = ModelPublished` (`ensure_agent_queue` sets that up). Messages arrive raw or in the
SNS envelope; both are read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from pydantic import ValidationError

from peoplenet_contracts import EventType, ModelPublished
from peoplenet_contracts.events import parse_event

log = logging.getLogger(__name__)
SQS_MAX_WAIT_S = 20


class ChannelWatcher(ABC):
    @abstractmethod
    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """Block up to timeout_s; True when an event says the channel may have moved."""


class PollingWatcher(ChannelWatcher):
    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        stop.wait(timeout_s)
        return False


def parse_notification(body: str) -> ModelPublished | None:
    """The ModelPublished in an SQS body (raw delivery or SNS envelope), else None."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            body = data["Message"]
        event = parse_event(body)
    except (ValueError, ValidationError):
        return None
    return event if isinstance(event, ModelPublished) else None


class SqsWatcher(ChannelWatcher):
    """Long-polls the agent's own queue; deletes every message it reads (they are only wake-ups)."""

    def __init__(self, sqs_client: Any, queue_url: str, channel: str) -> None:
        self.client = sqs_client
        self.queue_url = queue_url
        self.channel = channel

    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            response = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=int(min(SQS_MAX_WAIT_S, remaining))
            )
            relevant = False
            for message in response.get("Messages", []):
                event = parse_notification(message["Body"])
                if event is not None and event.channel in (self.channel, None):
                    log.info("ModelPublished %s (channel %s)", event.model_version, event.channel)
                    relevant = relevant or event.channel == self.channel
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if relevant:
                return True
        return False


def ensure_agent_queue(sns_client: Any, sqs_client: Any, topic_arn: str, queue_name: str) -> str:
    """Create (idempotently) the agent's queue and subscribe it to the topic for ModelPublished only."""
    queue_url = sqs_client.create_queue(QueueName=queue_name)["QueueUrl"]
    from gpu_worker.adapters.aws_setup import subscribe_queue

    filter_policy = {"event_type": [str(EventType.MODEL_PUBLISHED)]}
    subscribe_queue(sns_client, sqs_client, topic_arn, queue_url, filter_policy=filter_policy, raw_delivery=True)
    return str(queue_url)
