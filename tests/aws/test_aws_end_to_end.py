"""The AWS path end to end on moto: submit -> S3 notification -> trigger -> SQS job -> worker -> publish -> SNS.

Real sample photos, the real handler (in-process, each notification delivered twice), the real
worker in burst mode with the torch backend on the CPU, a spec derived from specs/demo_cpu.txt
with fewer epochs and smaller images, uploaded to the bucket and named by its key.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from aws_stack import BUCKET, SAMPLE, Stack, TriggerPump, client, expected_job_id
from typer.testing import CliRunner

from gpu_worker.adapters import DynamoJobLedger
from peoplenet_contracts import JobStatus, ModelManifest, ModelPublished

pytestmark = pytest.mark.slow
SPEC_KEY = "specs/e2e-tiny.txt"


def tiny_spec() -> str:
    text = (Path(__file__).resolve().parents[2] / "specs" / "demo_cpu.txt").read_text()
    for field, value in (
        ("num_epochs", 2),
        ("validation_period_during_training", 2),
        ("first_validation_epoch", 2),
        ("checkpoint_interval", 2),
        ("output_image_width", 160),
        ("output_image_height", 96),
    ):
        text, count = re.subn(rf"(\b{field}:\s*)\d+", rf"\g<1>{value}", text)
        assert count >= 1, field
    return text


class BurstWorker(threading.Thread):
    """A worker host: waits until the trigger has queued the job, then `worker.run(burst=True)`."""

    def __init__(self, ledger: DynamoJobLedger, job_id: str) -> None:
        super().__init__(name="burst-worker", daemon=True)
        self.ledger, self.job_id = ledger, job_id
        self.handled: int | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        from gpu_worker.adapters import build_adapters
        from gpu_worker.cli.runtime import build_worker
        from gpu_worker.config import load_settings

        try:
            while not self.stop.wait(0.2):
                try:
                    self.ledger.get(self.job_id)
                    break
                except KeyError:
                    continue
            settings = load_settings()
            self.handled = build_worker(settings, build_adapters(settings)).run(burst=True)
        except BaseException as exc:
            self.error = exc


def test_submit_to_model_published(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpu_worker.cli import app

    monkeypatch.setenv("PEOPLENET_WORKER__DEVICE", "cpu")
    monkeypatch.setenv("PEOPLENET_WORKER__BACKEND", "torch")
    monkeypatch.setenv("PEOPLENET_QUEUE__HEARTBEAT_INTERVAL_S", "5")
    s3 = client("s3", stack.endpoint)
    s3.put_object(Bucket=BUCKET, Key=SPEC_KEY, Body=tiny_spec().encode())
    job_id = expected_job_id(SAMPLE, "coco-people", "v1", spec=SPEC_KEY, base_model="none")
    ledger = DynamoJobLedger(stack.jobs_table, client=client("dynamodb", stack.endpoint))

    worker = BurstWorker(ledger, job_id)
    with TriggerPump(stack, deliver_twice=True) as pump:
        worker.start()
        result = CliRunner().invoke(
            app,
            [
                "submit", str(SAMPLE), "--dataset", "coco-people", "--version", "v1", "--spec", SPEC_KEY,
                "--base-model", "none", "--wait", "--poll", "0.5", "--timeout", "60", "--job-timeout", "900",
            ],
        )  # fmt: skip
        worker.stop.set()
        worker.join(timeout=900)
    assert worker.error is None, repr(worker.error)
    assert result.exit_code == 0, result.output
    assert not pump.stats.failures and not pump.stats.errors
    assert pump.stats.invocations >= 2  # every batch went to the handler twice

    # --wait printed the stage transitions through to the end.
    for line in ("train: DONE", "retrain: DONE", "publish: DONE", "notify: DONE", f"job {job_id}: SUCCEEDED"):
        assert line in result.stdout, result.stdout

    # One job although every notification arrived twice; it succeeded and names its model.
    (record,) = ledger.list_jobs()
    assert record.job_id == job_id and record.status is JobStatus.SUCCEEDED
    model_version = record.model_version
    assert model_version

    # Published: files first, manifest (with digests) last, channel pointer moved by the gate.
    prefix = f"models/peoplenet/{model_version}/"
    manifest = ModelManifest.from_json(s3.get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
    assert manifest.source_job == job_id and manifest.dataset == "coco-people/v1"
    listing = {o["Key"][len(prefix) :]: o["Size"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert manifest.files and all(listing.get(f.path) == f.size for f in manifest.files)
    channel = json.loads(s3.get_object(Bucket=BUCKET, Key="models/peoplenet/channels/production.json")["Body"].read())
    assert channel["model_version"] == model_version and channel["job_id"] == job_id

    # ModelPublished reached the host subscribed with a filter policy, with its attributes.
    (envelope,) = stack.sns_events(stack.published_queue_url)
    attributes = {name: a["Value"] for name, a in envelope["MessageAttributes"].items()}
    assert attributes == {
        "event_type": "ModelPublished",
        "model_version": model_version,
        "channel": "production",
        "job_id": job_id,
    }
    event = ModelPublished.model_validate_json(envelope["Message"])
    assert event.model_prefix == prefix and event.gate_passed

    types = [json.loads(e["Message"])["event_type"] for e in stack.sns_events(stack.all_events_queue_url)]
    assert "JobStarted" in types and "ModelPublished" in types and "DatasetRejected" not in types
    assert stack.receive_all(stack.jobs_queue_url) == [] and stack.receive_all(stack.jobs_dlq_url) == []

    status = CliRunner().invoke(app, ["status", job_id])
    assert status.exit_code == 0 and "SUCCEEDED" in status.stdout and model_version in status.stdout
