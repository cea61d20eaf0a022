"""The notifier port: SNS (to SQS subscribers, with filter policies) and log line + webhook."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from adapter_support import aws_client

from gpu_worker.adapters import LogNotifier, SnsNotifier
from gpu_worker.adapters.aws_setup import create_topic, subscribe_queue
from gpu_worker.ports.exceptions import AdapterUnavailable
from peoplenet_contracts.events import JobStarted, ModelPublished, parse_event

STARTED = JobStarted(job_id="j1", dataset="datasets/warehouse", dataset_version="v3", worker="gpu-1")
PUBLISHED = ModelPublished(
    job_id="j1",
    model_version="2025.03.01-1",
    model_prefix="models/peoplenet/2025.03.01-1/",
    channel="prod",
    gate_passed=True,
    metrics={"ap_person": 0.81},
)


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not batch:
            return messages
        messages.extend(json.loads(m["Body"]) for m in batch)
        for m in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_sns_delivers_event_json_and_attributes_to_filtered_subscribers(aws_endpoint: str) -> None:
    sns, sqs = aws_client("sns", aws_endpoint), aws_client("sqs", aws_endpoint)
    topic = create_topic(sns, "peoplenet-events")
    everything = sqs.create_queue(QueueName="all-events")["QueueUrl"]
    releases = sqs.create_queue(QueueName="releases")["QueueUrl"]
    subscribe_queue(sns, sqs, topic, everything)
    subscribe_queue(sns, sqs, topic, releases, filter_policy={"event_type": ["ModelPublished"]})

    notifier = SnsNotifier(topic, client=sns)
    notifier.publish(STARTED)
    notifier.publish(PUBLISHED)

    received = _drain(sqs, everything)
    assert sorted(parse_event(m["Message"]).event_type for m in received) == ["JobStarted", "ModelPublished"]
    [release] = _drain(sqs, releases)
    assert parse_event(release["Message"]) == PUBLISHED
    attributes = {name: value["Value"] for name, value in release["MessageAttributes"].items()}
    assert attributes == {
        "event_type": "ModelPublished",
        "model_version": "2025.03.01-1",
        "channel": "prod",
        "job_id": "j1",
    }
    assert all(value["Type"] == "String" for value in release["MessageAttributes"].values())


def test_sns_dead_endpoint_is_adapter_unavailable(aws_endpoint: str) -> None:
    topic = create_topic(aws_client("sns", aws_endpoint), "t")
    with pytest.raises(AdapterUnavailable):
        SnsNotifier(topic, endpoint_url=_closed_port_url(), region="us-east-1").publish(STARTED)


Posts = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def webhook() -> Iterator[tuple[str, Posts]]:
    """A local HTTP server recording every POST (headers, body)."""
    posts: Posts = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/peoplenet", posts
    finally:
        server.shutdown()
        server.server_close()


def test_log_notifier_logs_json_and_posts_to_the_webhook(
    webhook: tuple[str, Posts], caplog: pytest.LogCaptureFixture
) -> None:
    url, posts = webhook
    logger = logging.getLogger("test.events")
    with caplog.at_level(logging.INFO, logger="test.events"):
        LogNotifier(logger=logger, webhook_url=url).publish(PUBLISHED)
    [(headers, body)] = posts
    assert parse_event(body) == PUBLISHED
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Peoplenet-Event-Type"] == "ModelPublished"
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "test.events"]
    assert line["attributes"]["event_type"] == "ModelPublished"
    assert parse_event(json.dumps(line["event"])) == PUBLISHED


def test_webhook_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="test.events"):
        LogNotifier(logger=logging.getLogger("test.events"), webhook_url=_closed_port_url(), timeout_s=2).publish(
            STARTED
        )
    assert any("webhook" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
