"""Choose the adapters for the configured mode: local (folder + SQLite + log) or aws (S3, SQS, DynamoDB, SNS)."""

from __future__ import annotations

from dataclasses import dataclass

from gpu_worker.config import ConfigError, Settings
from gpu_worker.ports.ledger import JobLedger
from gpu_worker.ports.notifier import Notifier
from gpu_worker.ports.queue import JobQueue
from gpu_worker.ports.store import ObjectStore


@dataclass(frozen=True)
class Adapters:
    store: ObjectStore
    queue: JobQueue
    ledger: JobLedger
    notifier: Notifier


def build_adapters(settings: Settings) -> Adapters:
    if settings.mode == "aws":
        return _aws_adapters(settings)
    return _local_adapters(settings)


def _local_adapters(settings: Settings) -> Adapters:
    from gpu_worker.adapters.local_store import LocalFolderStore
    from gpu_worker.adapters.log_notifier import LogNotifier
    from gpu_worker.adapters.sqlite_ledger import SqliteJobLedger
    from gpu_worker.adapters.sqlite_queue import SqliteJobQueue

    return Adapters(
        store=LocalFolderStore(settings.store_dir),
        queue=SqliteJobQueue(
            settings.state_db,
            visibility_timeout_s=settings.queue.visibility_timeout_s,
            max_receives=settings.queue.max_receives,
        ),
        ledger=SqliteJobLedger(settings.state_db),
        notifier=LogNotifier(webhook_url=settings.notify.webhook_url),
    )


def _aws_adapters(settings: Settings) -> Adapters:
    # Imported here so local mode (and `--help`) never loads boto3.
    from gpu_worker.adapters.dynamo_ledger import DynamoJobLedger
    from gpu_worker.adapters.s3_store import S3Store
    from gpu_worker.adapters.sns_notifier import SnsNotifier
    from gpu_worker.adapters.sqs_queue import SqsJobQueue

    aws = settings.aws
    missing = [
        f"PEOPLENET_AWS__{name.upper()} (aws.{name})"
        for name in ("bucket", "jobs_queue_url", "jobs_dlq_url", "jobs_table", "events_topic_arn")
        if not getattr(aws, name)
    ]
    if missing:
        raise ConfigError(f"mode is 'aws' but these settings are missing: {', '.join(missing)}")
    assert aws.bucket and aws.jobs_queue_url and aws.jobs_dlq_url and aws.jobs_table and aws.events_topic_arn

    return Adapters(
        store=S3Store(aws.bucket, endpoint_url=aws.endpoint_url, region=aws.region),
        queue=SqsJobQueue(
            aws.jobs_queue_url,
            aws.jobs_dlq_url,
            max_receives=settings.queue.max_receives,
            visibility_timeout_s=settings.queue.visibility_timeout_s,
            endpoint_url=aws.endpoint_url,
            region=aws.region,
        ),
        ledger=DynamoJobLedger(aws.jobs_table, endpoint_url=aws.endpoint_url, region=aws.region),
        notifier=SnsNotifier(aws.events_topic_arn, endpoint_url=aws.endpoint_url, region=aws.region),
    )
