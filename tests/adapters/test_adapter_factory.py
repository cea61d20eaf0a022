"""build_adapters: local vs aws from settings, clear config errors, vendor errors kept at the edge."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from adapter_support import REGION, aws_client

from gpu_worker.adapters import (
    DynamoJobLedger,
    LocalFolderStore,
    LogNotifier,
    S3Store,
    SnsNotifier,
    SqliteJobLedger,
    SqliteJobQueue,
    SqsJobQueue,
    build_adapters,
)
from gpu_worker.adapters.aws_setup import create_bucket, create_jobs_table, create_queue_pair, create_topic
from gpu_worker.config import AwsSettings, ConfigError, QueueSettings, Settings
from gpu_worker.ports.exceptions import AdapterUnavailable
from gpu_worker.ports.ledger import JobRecord
from peoplenet_contracts import JobStatus
from peoplenet_contracts.events import JobStarted


def _record(job_id: str) -> JobRecord:
    now = JobStarted(job_id=job_id, dataset="d", dataset_version="v").occurred_at
    return JobRecord(job_id=job_id, status=JobStatus.QUEUED, created_at=now, updated_at=now, job_json="{}")


def test_local_mode_uses_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(mode="local", data_dir=tmp_path / "data", queue=QueueSettings(max_receives=5))
    adapters = build_adapters(settings)
    assert isinstance(adapters.store, LocalFolderStore) and adapters.store.root == settings.store_dir.resolve()
    assert isinstance(adapters.queue, SqliteJobQueue) and adapters.queue.max_receives == 5
    assert isinstance(adapters.ledger, SqliteJobLedger)
    assert isinstance(adapters.notifier, LogNotifier)
    adapters.queue.send("job")
    adapters.ledger.create(_record("j1"))
    assert settings.state_db.is_file()  # queue and ledger share one SQLite file
    assert build_adapters(settings).queue.approximate_depth() == 1


def test_local_mode_does_not_import_boto3(tmp_path: Path) -> None:
    code = (
        "import sys; from gpu_worker.adapters import build_adapters; from gpu_worker.config import Settings; "
        f"build_adapters(Settings(mode='local', data_dir={str(tmp_path)!r})); "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_aws_mode_names_the_missing_settings() -> None:
    settings = Settings(mode="aws", aws=AwsSettings(bucket="b", jobs_table="t"))
    with pytest.raises(ConfigError) as caught:
        build_adapters(settings)
    message = str(caught.value)
    for name in ("PEOPLENET_AWS__JOBS_QUEUE_URL", "PEOPLENET_AWS__JOBS_DLQ_URL", "PEOPLENET_AWS__EVENTS_TOPIC_ARN"):
        assert name in message
    assert "PEOPLENET_AWS__BUCKET" not in message


def test_aws_mode_talks_to_the_configured_endpoint(aws_endpoint: str) -> None:
    create_bucket(aws_client("s3", aws_endpoint), "bucket", REGION)
    queue_url, dlq_url = create_queue_pair(aws_client("sqs", aws_endpoint), "jobs", max_receives=2)
    create_jobs_table(aws_client("dynamodb", aws_endpoint), "jobs")
    topic = create_topic(aws_client("sns", aws_endpoint), "events")
    aws = AwsSettings(
        endpoint_url=aws_endpoint,
        region=REGION,
        bucket="bucket",
        jobs_queue_url=queue_url,
        jobs_dlq_url=dlq_url,
        jobs_table="jobs",
        events_topic_arn=topic,
    )
    adapters = build_adapters(Settings(mode="aws", aws=aws, queue=QueueSettings(max_receives=2)))
    assert isinstance(adapters.store, S3Store) and isinstance(adapters.queue, SqsJobQueue)
    assert isinstance(adapters.ledger, DynamoJobLedger) and isinstance(adapters.notifier, SnsNotifier)
    adapters.store.put_text("hello.txt", "hi")
    assert aws_client("s3", aws_endpoint).get_object(Bucket="bucket", Key="hello.txt")["Body"].read() == b"hi"
    adapters.queue.send("job")
    assert adapters.queue.approximate_depth() == 1
    assert adapters.ledger.create(_record("j1")) is True
    adapters.notifier.publish(JobStarted(job_id="j1", dataset="d", dataset_version="v"))


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_dead_endpoint_is_adapter_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = _dead_endpoint()
    where = {"endpoint_url": endpoint, "region": REGION}
    with pytest.raises(AdapterUnavailable, match="S3 bucket"):
        S3Store("bucket", **where).get_bytes("k")  # type: ignore[arg-type]
    with pytest.raises(AdapterUnavailable, match="SQS queue"):
        SqsJobQueue(f"{endpoint}/123456789012/jobs", f"{endpoint}/123456789012/dlq", **where).receive()  # type: ignore[arg-type]
    with pytest.raises(AdapterUnavailable, match="DynamoDB table"):
        DynamoJobLedger("jobs", **where).get("j1")  # type: ignore[arg-type]


def test_missing_aws_resources_are_adapter_unavailable(aws_endpoint: str) -> None:
    with pytest.raises(AdapterUnavailable, match="NoSuchBucket"):
        S3Store("no-such-bucket", client=aws_client("s3", aws_endpoint)).get_bytes("k")
    with pytest.raises(AdapterUnavailable, match="ResourceNotFound"):
        DynamoJobLedger("no-such-table", client=aws_client("dynamodb", aws_endpoint)).get("j1")
    queue_url, _ = create_queue_pair(aws_client("sqs", aws_endpoint), "gone")
    aws_client("sqs", aws_endpoint).delete_queue(QueueUrl=queue_url)
    with pytest.raises(AdapterUnavailable):
        SqsJobQueue(queue_url, queue_url + "-dlq", client=aws_client("sqs", aws_endpoint)).send("x")


def test_unusable_sqlite_file_is_adapter_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")
    with pytest.raises(AdapterUnavailable, match="SQLite"):
        SqliteJobQueue(blocker / "state.sqlite")
    with pytest.raises(AdapterUnavailable, match="SQLite"):
        SqliteJobLedger(blocker / "state.sqlite")
