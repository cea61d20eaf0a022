"""The agent's own SQS queue, subscribed to the SNS topic with a ModelPublished filter (moto server)."""

from __future__ import annotations

import threading

import boto3

from gpu_worker.adapters.sns_notifier import SnsNotifier
from gpu_worker.agent import SqsWatcher, ensure_agent_queue, parse_notification
from peoplenet_contracts import JobStarted, ModelPublished


def test_queue_gets_model_published_only(aws_endpoint: str) -> None:
    sns = boto3.client("sns", endpoint_url=aws_endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    topic = sns.create_topic(Name="events")["TopicArn"]
    queue_url = ensure_agent_queue(sns, sqs, topic, "agent-orin-1")
    assert ensure_agent_queue(sns, sqs, topic, "agent-orin-1") == queue_url  # idempotent
    notifier = SnsNotifier(topic, endpoint_url=aws_endpoint, region="us-east-1")
    watcher = SqsWatcher(sqs, queue_url, "production")
    stop = threading.Event()

    notifier.publish(JobStarted(job_id="j1", dataset="d", dataset_version="1"))
    # The filter policy keeps it out of the queue altogether.
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []) == []
    notifier.publish(ModelPublished(job_id="j1", model_version="v1", model_prefix="models/peoplenet/v1/",
                                    channel="staging", gate_passed=True))  # fmt: skip
    assert watcher.wait(1.0, stop) is False  # another channel
    notifier.publish(ModelPublished(job_id="j2", model_version="v2", model_prefix="models/peoplenet/v2/",
                                    channel="production", gate_passed=True))  # fmt: skip
    assert watcher.wait(5.0, stop) is True
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", []) == []


def test_parse_notification_reads_both_deliveries() -> None:
    event = ModelPublished(job_id="j", model_version="v", model_prefix="p/", channel="production", gate_passed=True)
    raw = event.model_dump_json()
    envelope = '{"Type": "Notification", "Message": ' + __import__("json").dumps(raw) + "}"
    assert parse_notification(raw) == parse_notification(envelope) == event
    assert parse_notification("not json") is None
