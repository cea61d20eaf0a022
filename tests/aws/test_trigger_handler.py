"""The trigger handler, in-process, on moto: real S3 notifications from real uploads of the sample photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_stack import (
    BUCKET,
    SAMPLE,
    LambdaContext,
    Stack,
    TriggerPump,
    client,
    expected_job_id,
    load_event,
    sqs_event,
    upload_folder,
)

from gpu_worker.adapters import DynamoJobLedger
from lambdas.dataset_trigger import app
from lambdas.dataset_trigger.s3_source import S3DatasetSource, S3Unavailable
from peoplenet_contracts import JobStatus, RetrainJob


def _jobs(stack: Stack) -> list[RetrainJob]:
    return [RetrainJob.from_json(m["Body"]) for m in stack.receive_all(stack.jobs_queue_url)]


def _ledger(stack: Stack) -> DynamoJobLedger:
    return DynamoJobLedger(stack.jobs_table, client=client("dynamodb", stack.endpoint))


def _emf_metrics(stdout: str) -> list[str]:
    """Metric names in the Embedded Metric Format lines Powertools printed."""
    names = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names += [m["Name"] for m in directive["Metrics"]]
    return names


def _broken_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("*.md"))
    label = sorted((folder / "labels").iterdir())[0]
    lines = label.read_text().splitlines()
    lines[1] = "person 0.00 0 0.00 wide 61.35 68.92 373.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00"
    label.write_text("\n".join(lines) + "\n")
    return folder


def test_upload_queues_and_records_one_job(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    upload_folder(stack, SAMPLE, "coco-people", "v1", spec="demo_cpu.txt", base_model="none")
    pump = TriggerPump(stack)
    pump.drain()

    job_id = expected_job_id(SAMPLE, "coco-people", "v1", spec="demo_cpu.txt", base_model="none")
    assert pump.stats.records == 2  # s3:TestEvent (sent when the notification was configured) + the manifest
    assert not pump.stats.failures and not pump.stats.errors
    (job,) = _jobs(stack)
    assert job.job_id == job_id
    assert (job.dataset, job.dataset_version) == ("coco-people", "v1")
    assert job.dataset_prefix == "datasets/coco-people/v1/"
    assert job.manifest_key == "datasets/coco-people/v1/manifest.json"
    assert job.spec == "demo_cpu.txt" and str(job.base_model) == "none"
    record = _ledger(stack).get(job_id)
    assert record.status is JobStatus.QUEUED and record.dataset == "coco-people/v1"
    listing = client("s3", stack.endpoint).list_objects_v2(Bucket=BUCKET, Prefix="datasets/coco-people/v1/_")
    assert listing.get("Contents", []) == []  # no _validation.json
    assert "DatasetsQueued" in _emf_metrics(capsys.readouterr().out)


def test_same_notification_twice_yields_one_job(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.receive_all(stack.trigger_queue_url)  # the s3:TestEvent
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    pump = TriggerPump(stack, deliver_twice=True)
    pump.drain()
    assert pump.stats.invocations == 2 and not pump.stats.failures
    first, second = pump.stats.responses[-2:]
    assert first == second == {"batchItemFailures": []}
    assert len(_jobs(stack)) == 1
    assert len(_ledger(stack).list_jobs()) == 1
    # Counted once: the second delivery returned the stored result without running again.
    assert _emf_metrics(capsys.readouterr().out).count("DatasetsQueued") == 1
    items = client("dynamodb", stack.endpoint).scan(TableName=stack.idempotency_table)["Items"]
    assert [item["status"]["S"] for item in items] == ["COMPLETED"]


def test_rewritten_manifest_with_same_content_queues_nothing_new(stack: Stack) -> None:
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    TriggerPump(stack).drain()
    # A new manifest object (new ETag: created_at differs) describing the same files and options.
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    pump = TriggerPump(stack)
    pump.drain()
    assert not pump.stats.failures
    assert len(_jobs(stack)) == 1
    assert len(_ledger(stack).list_jobs()) == 1


def test_bad_labels_are_rejected_with_a_report_and_an_event(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _broken_copy(tmp_path)
    upload_folder(stack, folder, "shop-a", "v2")
    pump = TriggerPump(stack)
    pump.drain()
    assert not pump.stats.failures

    s3 = client("s3", stack.endpoint)
    report = json.loads(s3.get_object(Bucket=BUCKET, Key="datasets/shop-a/v2/_validation.json")["Body"].read())
    bad_label = sorted((folder / "labels").iterdir())[0].name
    assert report["ok"] is False
    assert any(p.startswith(f"labels/{bad_label}:2:") for p in report["problems"]), report["problems"]

    (envelope,) = stack.sns_events(stack.all_events_queue_url)
    assert envelope["MessageAttributes"]["event_type"]["Value"] == "DatasetRejected"
    event = json.loads(envelope["Message"])
    assert event["report_key"] == "datasets/shop-a/v2/_validation.json"
    assert event["manifest_key"] == "datasets/shop-a/v2/manifest.json"
    assert event["problem_count"] == len(report["problems"]) >= 1
    assert stack.sns_events(stack.published_queue_url) == []  # filtered: ModelPublished only
    assert _jobs(stack) == []
    assert _ledger(stack).list_jobs() == []
    assert "DatasetsRejected" in _emf_metrics(capsys.readouterr().out)


def test_manifest_naming_a_missing_file_is_rejected(stack: Stack) -> None:
    s3 = client("s3", stack.endpoint)
    upload_folder(stack, SAMPLE, "shop-a", "v4")
    missing = sorted((SAMPLE / "images").iterdir())[3].name
    s3.delete_object(Bucket=BUCKET, Key=f"datasets/shop-a/v4/images/{missing}")
    stack.receive_all(stack.trigger_queue_url)  # drop the first notification: the dataset changed since
    manifest = s3.get_object(Bucket=BUCKET, Key="datasets/shop-a/v4/manifest.json")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key="datasets/shop-a/v4/manifest.json", Body=manifest)
    TriggerPump(stack).drain()
    report = json.loads(s3.get_object(Bucket=BUCKET, Key="datasets/shop-a/v4/_validation.json")["Body"].read())
    assert f"images/{missing}:0: listed in manifest.json but missing" in report["problems"]
    assert _jobs(stack) == []


def test_a_poison_message_fails_alone(stack: Stack) -> None:
    sqs = client("sqs", stack.endpoint)
    stack.receive_all(stack.trigger_queue_url)  # the s3:TestEvent
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    sqs.send_message(QueueUrl=stack.trigger_queue_url, MessageBody='{"hello": "world"}')
    messages = stack.receive_all(stack.trigger_queue_url)
    assert len(messages) == 2
    poison = next(m for m in messages if "hello" in m["Body"])
    response = app.lambda_handler(
        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:pnr-trigger"), LambdaContext()
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": poison["MessageId"]}]}
    assert len(_jobs(stack)) == 1


def test_full_aws_shaped_events_drive_the_handler(stack: Stack) -> None:
    """tests/events/*.json as AWS sends them (bucket and key match what is uploaded here)."""
    upload_folder(stack, SAMPLE, "shop-a", "v3")
    stack.receive_all(stack.trigger_queue_url)  # only the fixtures drive the handler here
    job_id = expected_job_id(SAMPLE, "shop-a", "v3")

    assert app.lambda_handler(load_event("sqs_s3_test_event.json"), LambdaContext()) == {"batchItemFailures": []}
    assert app.lambda_handler(load_event("sqs_s3_notification.json"), LambdaContext()) == {"batchItemFailures": []}
    assert [j.job_id for j in _jobs(stack)] == [job_id]
    # Same bucket, key and ETag through EventBridge (via SQS, then directly) and through SNS: one job.
    for name in ("sqs_eventbridge_object_created.json", "sqs_sns_s3_notification.json"):
        assert app.lambda_handler(load_event(name), LambdaContext()) == {"batchItemFailures": []}
    direct = app.lambda_handler(load_event("eventbridge_object_created.json"), LambdaContext())
    assert direct["results"][0]["job_id"] == job_id and direct["results"][0]["outcome"] == "queued"
    assert _jobs(stack) == []
    assert [r.job_id for r in _ledger(stack).list_jobs()] == [job_id]


def test_events_of_other_buckets_and_keys_are_skipped(stack: Stack) -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail"]["bucket"]["name"] = "someone-elses-bucket"
    assert app.lambda_handler(event, LambdaContext()) == {"results": []}
    event = load_event("eventbridge_object_created.json")
    event["detail"]["object"]["key"] = "datasets/shop-a/v3/labels/0001.txt"
    assert app.lambda_handler(event, LambdaContext()) == {"results": []}
    items = client("dynamodb", stack.endpoint).scan(TableName=stack.idempotency_table)["Items"]
    assert items == []  # skipped before the idempotency layer: no records for other objects


def test_an_s3_outage_fails_the_record_for_redelivery(stack: Stack) -> None:
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    messages = [m for m in stack.receive_all(stack.trigger_queue_url) if "TestEvent" not in m["Body"]]
    s3 = client("s3", stack.endpoint)
    for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]:
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)
    with pytest.raises(Exception, match="All records failed"):
        app.lambda_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:pnr-trigger"), LambdaContext())
    # Nothing rejected, nothing recorded: the idempotency record is released so a redelivery runs again.
    assert stack.sns_events(stack.all_events_queue_url) == []
    assert client("dynamodb", stack.endpoint).scan(TableName=stack.idempotency_table)["Items"] == []


def test_s3_source_reports_dataset_facts_and_raises_on_outages(stack: Stack) -> None:
    s3 = client("s3", stack.endpoint)
    s3.put_object(Bucket=BUCKET, Key="datasets/x/v1/images/empty.jpg", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="datasets/x/v1/labels/", Body=b"")  # a console "folder"
    s3.put_object(Bucket=BUCKET, Key="datasets/x/v1/labels/a.txt", Body=b"person 0 0 0 1 2 3 4 0 0 0 0 0 0 0\n")
    source = S3DatasetSource(s3, BUCKET, "datasets/x/v1/")
    assert source.location == f"s3://{BUCKET}/datasets/x/v1/"
    assert source.list_files() == {"images/empty.jpg": 0, "labels/a.txt": 35}
    assert source.read_head("images/empty.jpg", 65536) == b""
    assert source.read_head("labels/a.txt", 6) == b"person"
    assert source.read_text("labels/a.txt").startswith("person 0 0")
    with pytest.raises(FileNotFoundError):
        source.read_head("images/gone.jpg", 10)
    with pytest.raises(PermissionError):
        source.read_text("../../models/secret.txt")
    outage = S3DatasetSource(s3, "no-such-bucket-here", "datasets/x/v1/")
    with pytest.raises(S3Unavailable) as caught:
        outage.list_files()
    assert not isinstance(caught.value, OSError)  # the validator would turn an OSError into a rejection
