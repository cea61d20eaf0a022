"""Whole jobs through the real pipeline (torch backend, tiny spec) with an in-process worker."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gpu_worker.adapters import build_adapters
from gpu_worker.cli.runtime import build_worker
from gpu_worker.local.intake import intake_folder
from gpu_worker.pipeline.channels import read_channel
from gpu_worker.pipeline.layout import model_prefix
from gpu_worker.pipeline.publish import read_model_manifest
from peoplenet_contracts import JobStatus, RetrainJob, StageName, StageStatus
from tests.pipeline.conftest import make_settings, submit_sample


def test_job_publishes_a_complete_model_and_moves_the_channel(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", PEOPLENET_EXPORT__INT8="true")
    adapters = build_adapters(settings)
    intake = submit_sample(adapters, settings, "v1")
    assert intake.queued and intake.job_id

    assert build_worker(settings, adapters).run(burst=True) == 1

    record = adapters.ledger.get(intake.job_id)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert {name: stage.status for name, stage in record.stages.items()} == {
        name: StageStatus.DONE for name in StageName
    }
    manifest = read_model_manifest(adapters.store, record.model_version or "")
    assert manifest is not None and manifest.source_job == intake.job_id
    assert manifest.base_model == "none" and manifest.classes == ["person", "bag", "face"]
    assert manifest.input_dims == (3, 96, 128)
    files = {digest.path: digest for digest in manifest.files}
    for required in (
        "model.onnx",
        "model_int8.onnx",
        "calibration.cache",
        "labels.txt",
        "model.pt",
        "metrics.json",
        "report.html",
        "config_infer_primary_peoplenet.txt",
    ):
        assert required in files, required
    for digest in manifest.files:
        data = adapters.store.get_bytes(model_prefix(manifest.model_version) + digest.path)
        assert hashlib.sha256(data).hexdigest() == digest.sha256, digest.path
        assert len(data) == digest.size
    pointer, _ = read_channel(adapters.store, "production")
    assert pointer is not None and pointer.model_version == manifest.model_version
    report = adapters.store.get_text(model_prefix(manifest.model_version) + "report.html")
    assert "<svg" in report and "data:image/jpeg;base64," in report


def test_the_same_job_delivered_again_is_not_run_twice(local_setup: tuple) -> None:
    settings, adapters = local_setup
    intake = submit_sample(adapters, settings, "v1")
    build_worker(settings, adapters).run(burst=True)
    record = adapters.ledger.get(intake.job_id)
    published = [
        info.key for info in adapters.store.list_objects("models/peoplenet/") if info.key.endswith("manifest.json")
    ]

    # A duplicate delivery (at-least-once queue) and the same data taken in again.
    adapters.queue.send(RetrainJob.from_json(record.job_json).to_json())
    again_intake = intake_folder(settings.inbox_dir / "people" / "v1", adapters)
    assert again_intake.job_id == intake.job_id and not again_intake.queued
    build_worker(settings, adapters).run(burst=True)

    again = adapters.ledger.get(intake.job_id)
    assert again.status is JobStatus.SUCCEEDED and again.attempts == record.attempts
    after = [
        info.key for info in adapters.store.list_objects("models/peoplenet/") if info.key.endswith("manifest.json")
    ]
    assert [k for k in after if intake.job_id in k] == [k for k in published if intake.job_id in k]


def test_a_failed_gate_publishes_a_candidate_and_leaves_the_channel(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    adapters = build_adapters(settings)
    first = submit_sample(adapters, settings, "v1")
    build_worker(settings, adapters).run(burst=True)
    production, etag = read_channel(adapters.store, "production")
    assert production is not None

    strict = make_settings(tmp_path / "data", PEOPLENET_GATE__MIN_AP_CHANGE='{"person": 0.5}')
    second = submit_sample(adapters, strict, "v2", drop=1)
    assert second.job_id != first.job_id
    build_worker(strict, adapters).run(burst=True)

    record = adapters.ledger.get(second.job_id or "")
    assert record.status is JobStatus.CANDIDATE
    assert record.reason and "gate failed" in record.reason and "AP/person" in record.reason
    candidate = read_model_manifest(adapters.store, record.model_version or "")
    assert candidate is not None and candidate.gate_passed is False
    after, after_etag = read_channel(adapters.store, "production")
    assert after == production and after_etag == etag
    gate = json.loads(adapters.store.get_text(model_prefix(candidate.model_version) + "gate.json"))
    assert gate["production_version"] == production.model_version


def test_a_poison_job_is_dead_lettered_with_its_reason(local_setup: tuple) -> None:
    settings, adapters = local_setup
    intake = submit_sample(adapters, settings, "v1")
    job = RetrainJob.from_json(adapters.ledger.get(intake.job_id or "").job_json)
    adapters.store.put_text(job.manifest_key, "{ this is not a manifest")  # fails the same way every time

    build_worker(settings, adapters).run(burst=True)

    dead = adapters.queue.dead_letters()
    assert len(dead) == 1 and dead[0].receive_count == settings.queue.max_receives
    assert dead[0].reason and "ValidationError" in dead[0].reason
    record = adapters.ledger.get(job.job_id)
    assert record.status is JobStatus.FAILED
    assert record.reason and f"gave up after {settings.queue.max_receives} attempts" in record.reason
    assert record.stages[StageName.FETCH].status is StageStatus.FAILED
    assert adapters.queue.approximate_depth() == 0
