"""Real worker processes: kill -9 mid-training, SIGTERM, and two workers sharing one queue."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from gpu_worker.adapters import build_adapters
from gpu_worker.config import Settings
from gpu_worker.pipeline.layout import stage_prefix
from gpu_worker.pipeline.publish import read_model_manifest
from peoplenet_contracts import JobStatus, StageName
from tests.pipeline.conftest import TINY_SPEC_KEY, WebhookSink, make_settings, start_worker, submit_sample, tiny_spec

TIMEOUT_S = 240


def _wait_for_checkpoint(settings: Settings, job_id: str, proc: subprocess.Popen[str]) -> str:
    """Block until the worker has mirrored a training checkpoint into the store; return its key."""
    store = build_adapters(settings).store
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        keys = [i.key for i in store.list_objects(stage_prefix(job_id, "train") + "checkpoints/")]
        if keys:
            return keys[-1]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared in the store")


def _finish(proc: subprocess.Popen[str]) -> str:
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, stderr[-3000:]
    return stderr


def _slow_job(tmp_path: Path, webhook: WebhookSink) -> tuple[Settings, str]:
    settings = make_settings(tmp_path / "data", PEOPLENET_NOTIFY__WEBHOOK_URL=webhook.url)
    adapters = build_adapters(settings)
    adapters.store.put_text(TINY_SPEC_KEY, tiny_spec(epochs=12, checkpoint_interval=1))
    intake = submit_sample(adapters, settings, "v1")
    assert intake.job_id
    return settings, intake.job_id


def _history_epochs(settings: Settings, job_id: str) -> list[int]:
    history = json.loads(build_adapters(settings).store.get_text(stage_prefix(job_id, "train") + "history.json"))
    return [int(epoch["epoch"]) for epoch in history]


def test_kill_9_mid_training_resumes_from_the_checkpoint_and_publishes_once(
    tmp_path: Path, webhook: WebhookSink
) -> None:
    settings, job_id = _slow_job(tmp_path, webhook)
    env = {"PEOPLENET_NOTIFY__WEBHOOK_URL": webhook.url}
    first = start_worker(settings.data_dir, "--burst", **env)
    _wait_for_checkpoint(settings, job_id, first)
    first.kill()  # SIGKILL: no cleanup, the lease and the message are simply abandoned
    first.wait()

    time.sleep(settings.queue.visibility_timeout_s + 1)  # the message and the ledger lease expire
    second = start_worker(settings.data_dir, "--burst", **env)
    _finish(second)

    adapters = build_adapters(settings)
    record = adapters.ledger.get(job_id)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert "resumed from" in (record.stages[StageName.TRAIN].detail or "")
    assert _history_epochs(settings, job_id) == list(range(12))  # every epoch once, none repeated
    manifests = [i.key for i in adapters.store.list_objects("models/peoplenet/") if i.key.endswith("/manifest.json")]
    assert len(manifests) == 1
    assert read_model_manifest(adapters.store, record.model_version or "") is not None
    assert len(webhook.of_type("ModelPublished")) == 1
    assert adapters.queue.approximate_depth() == 0 and adapters.queue.dead_letters() == []


def test_sigterm_checkpoints_releases_and_another_worker_resumes(tmp_path: Path, webhook: WebhookSink) -> None:
    settings, job_id = _slow_job(tmp_path, webhook)
    first = start_worker(settings.data_dir)  # not burst: only SIGTERM ends it
    _wait_for_checkpoint(settings, job_id, first)
    first.send_signal(signal.SIGTERM)
    stderr = _finish(first)
    assert "stop requested: SIGTERM" in stderr

    adapters = build_adapters(settings)
    record = adapters.ledger.get(job_id)
    assert not record.status.is_terminal
    assert adapters.queue.approximate_depth() == 1  # released at once, not after the visibility timeout

    _finish(start_worker(settings.data_dir, "--burst"))
    record = adapters.ledger.get(job_id)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert "resumed from" in (record.stages[StageName.TRAIN].detail or "")
    assert _history_epochs(settings, job_id) == list(range(12))
    assert adapters.queue.dead_letters() == []


def test_two_workers_run_two_jobs_without_overlap(tmp_path: Path, webhook: WebhookSink) -> None:
    settings = make_settings(tmp_path / "data")
    adapters = build_adapters(settings)
    jobs = [submit_sample(adapters, settings, f"v{i}", drop=i).job_id for i in (1, 2)]
    env = {"PEOPLENET_NOTIFY__WEBHOOK_URL": webhook.url}
    workers = [start_worker(settings.data_dir, "--burst", "--max-jobs", "1", **env) for _ in range(2)]
    logs = [_finish(w) for w in workers]

    owners: dict[str, set[int]] = {}
    for index, log in enumerate(logs):
        for line in log.splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("message") == "stage started":
                owners.setdefault(entry["job_id"], set()).add(index)
    assert sorted(owners) == sorted(jobs)
    assert all(len(w) == 1 for w in owners.values())  # each job ran in exactly one worker
    assert {next(iter(w)) for w in owners.values()} == {0, 1}  # and each worker ran one job
    for job_id in jobs:
        assert adapters.ledger.get(job_id or "").status in (JobStatus.SUCCEEDED, JobStatus.CANDIDATE)
    assert sorted(e["job_id"] for e in webhook.of_type("JobStarted")) == sorted(jobs)
