"""The template's resources on a moto server, and a stand-in for Lambda's SQS event source mapping.

moto cannot run Lambda code, so `TriggerPump` does what the event source mapping does: receive
from the trigger queue, call the handler in-process with an SQS event and a context, delete what
succeeded and leave the reported failures for redelivery.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = f"pnr-data-{ACCOUNT}-{REGION}"  # the bucket of tests/events/*.json
REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "tests" / "events"
SAMPLE = REPO_ROOT / "samples" / "coco-people"


@functools.cache
def client(service: str, endpoint: str) -> Any:
    """One client per service and endpoint: clients are thread-safe, and each costs ~0.3 s to build."""
    from gpu_worker.adapters._aws import make_client

    return make_client(service, endpoint_url=endpoint, region=REGION)


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return event


@dataclass
class LambdaContext:
    """What Powertools reads from Lambda's context object."""

    function_name: str = "pnr-dataset-trigger"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:pnr-dataset-trigger"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/pnr-dataset-trigger"
    log_stream_name: str = "2024/05/14/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 55_000


@dataclass(frozen=True)
class Stack:
    endpoint: str
    bucket: str
    trigger_queue_url: str
    trigger_dlq_url: str
    jobs_queue_url: str
    jobs_dlq_url: str
    jobs_table: str
    idempotency_table: str
    topic_arn: str
    published_queue_url: str  # subscribed with a filter: ModelPublished only
    all_events_queue_url: str  # subscribed without a filter

    def lambda_env(self) -> dict[str, str]:
        return {
            "DATA_BUCKET": self.bucket,
            "JOBS_QUEUE_URL": self.jobs_queue_url,
            "JOBS_DLQ_URL": self.jobs_dlq_url,
            "JOBS_TABLE": self.jobs_table,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "EVENTS_TOPIC_ARN": self.topic_arn,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": "peoplenet-retrain",
            "POWERTOOLS_METRICS_NAMESPACE": "PeopleNetRetrain",
        }

    def cli_env(self, data_dir: Path) -> dict[str, str]:
        """What the worker's user data writes to /etc/peoplenet-retrain.env, pointed at moto."""
        return {
            "PEOPLENET_MODE": "aws",
            "PEOPLENET_DATA_DIR": str(data_dir),
            "PEOPLENET_AWS__REGION": REGION,
            "PEOPLENET_AWS__ENDPOINT_URL": self.endpoint,
            "PEOPLENET_AWS__BUCKET": self.bucket,
            "PEOPLENET_AWS__JOBS_QUEUE_URL": self.jobs_queue_url,
            "PEOPLENET_AWS__JOBS_DLQ_URL": self.jobs_dlq_url,
            "PEOPLENET_AWS__JOBS_TABLE": self.jobs_table,
            "PEOPLENET_AWS__EVENTS_TOPIC_ARN": self.topic_arn,
        }

    def receive_all(self, queue_url: str, *, wait_s: int = 0) -> list[dict[str, Any]]:
        """Every message now visible on the queue (deleted once read)."""
        sqs = client("sqs", self.endpoint)
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_s if not messages else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)

    def sns_events(self, queue_url: str) -> list[dict[str, Any]]:
        """The SNS envelopes delivered to a subscribed queue (Message + MessageAttributes)."""
        return [json.loads(m["Body"]) for m in self.receive_all(queue_url)]


def create_stack(endpoint: str) -> Stack:
    """What template.yaml declares, minus IAM: bucket + notification, queues with DLQs, tables, topic."""
    from gpu_worker.adapters.aws_setup import (
        create_bucket,
        create_jobs_table,
        create_queue_pair,
        create_topic,
        subscribe_queue,
    )

    s3, sqs, ddb, sns = (client(name, endpoint) for name in ("s3", "sqs", "dynamodb", "sns"))
    trigger_url, trigger_dlq = create_queue_pair(sqs, "pnr-trigger", max_receives=5, visibility_timeout_s=360)
    jobs_url, jobs_dlq = create_queue_pair(sqs, "pnr-jobs", max_receives=5, visibility_timeout_s=900)
    create_bucket(s3, BUCKET, REGION)
    trigger_arn = sqs.get_queue_attributes(QueueUrl=trigger_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": trigger_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "datasets/"},
                                {"Name": "suffix", "Value": "manifest.json"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    create_jobs_table(ddb, "pnr-jobs")
    ddb.create_table(
        TableName="pnr-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName="pnr-idempotency", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    topic = create_topic(sns, "pnr-events")
    published = sqs.create_queue(QueueName="edge-host-a")["QueueUrl"]
    subscribe_queue(sns, sqs, topic, published, filter_policy={"event_type": ["ModelPublished"]})
    every = sqs.create_queue(QueueName="ops-all-events")["QueueUrl"]
    subscribe_queue(sns, sqs, topic, every)
    return Stack(
        endpoint=endpoint,
        bucket=BUCKET,
        trigger_queue_url=trigger_url,
        trigger_dlq_url=trigger_dlq,
        jobs_queue_url=jobs_url,
        jobs_dlq_url=jobs_dlq,
        jobs_table="pnr-jobs",
        idempotency_table="pnr-idempotency",
        topic_arn=topic,
        published_queue_url=published,
        all_events_queue_url=every,
    )


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Lambda's SQS event for messages as ReceiveMessage returned them."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


@dataclass
class PumpStats:
    invocations: int = 0
    records: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # invocations that raised (e.g. every record failed)
    responses: list[dict[str, Any]] = field(default_factory=list)


class TriggerPump:
    """Lambda's event source mapping for the trigger queue: receive, invoke, delete the successes."""

    def __init__(self, stack: Stack, *, deliver_twice: bool = False) -> None:
        self.stack = stack
        self.deliver_twice = deliver_twice
        self.stats = PumpStats()
        self._sqs = client("sqs", stack.endpoint)
        self._arn = self._sqs.get_queue_attributes(QueueUrl=stack.trigger_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_s: int = 0) -> int:
        from lambdas.dataset_trigger import app

        messages = self._sqs.receive_message(
            QueueUrl=self.stack.trigger_queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = sqs_event(messages, self._arn)
        failed: set[str] = set()
        for _ in range(2 if self.deliver_twice else 1):
            self.stats.invocations += 1
            try:
                response = app.lambda_handler(event, LambdaContext())
            except Exception as exc:  # Powertools raises when every record of the batch failed
                self.stats.errors.append(f"{type(exc).__name__}: {exc}")
                failed = {m["MessageId"] for m in messages}
                continue
            self.stats.responses.append(response)
            failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        self.stats.records += len(messages)
        for message in messages:
            if message["MessageId"] in failed:
                self.stats.failures.append(message["MessageId"])
            else:
                self._sqs.delete_message(QueueUrl=self.stack.trigger_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def drain(self) -> None:
        while self.poll_once():
            pass

    def __enter__(self) -> TriggerPump:
        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once(wait_s=1)

        self._thread = threading.Thread(target=loop, name="trigger-pump", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def manifest_for(folder: Path, dataset: str, version: str, **options: str | None) -> Any:
    """The manifest of any folder (valid or not): every file under images/ and labels/ with its size."""
    from peoplenet_contracts import DatasetFile, DatasetManifest

    def files(sub: str) -> list[DatasetFile]:
        return [DatasetFile(path=f"{sub}/{p.name}", size=p.stat().st_size) for p in sorted((folder / sub).iterdir())]

    return DatasetManifest(dataset=dataset, version=version, images=files("images"), labels=files("labels"), **options)


def upload_folder(stack: Stack, folder: Path, dataset: str, version: str, **options: str | None) -> str:
    """Upload images and labels, then manifest.json (last, as every uploader must). Returns the manifest key."""
    s3 = client("s3", stack.endpoint)
    prefix = f"datasets/{dataset}/{version}/"
    manifest = manifest_for(folder, dataset, version, **options)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda e: s3.put_object(Bucket=stack.bucket, Key=prefix + e.path, Body=(folder / e.path).read_bytes()),
                [*manifest.images, *manifest.labels],
            )
        )
    s3.put_object(Bucket=stack.bucket, Key=prefix + "manifest.json", Body=manifest.to_json().encode())
    return prefix + "manifest.json"


def expected_job_id(folder: Path, dataset: str, version: str, **options: str | None) -> str:
    from gpu_worker.intake import content_digest
    from gpu_worker.pipeline.layout import job_id_for

    return job_id_for(dataset, version, content_digest(manifest_for(folder, dataset, version, **options)))
