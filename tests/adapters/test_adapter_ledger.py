"""One behavioural suite for the job ledger port, run on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from gpu_worker.ports.ledger import JobLedger, JobRecord, StageRecord
from peoplenet_contracts import JobStatus, StageName, StageStatus

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _record(job_id: str, created_at: datetime = T0, job_json: str | None = None) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        status=JobStatus.QUEUED,
        created_at=created_at,
        updated_at=created_at,
        job_json=job_json or f'{{"job_id": "{job_id}"}}',
        dataset="datasets/warehouse/v3",
    )


def test_create_is_idempotent(ledger: JobLedger) -> None:
    assert ledger.create(_record("j1")) is True
    assert ledger.create(_record("j1", job_json='{"other": true}')) is False
    stored = ledger.get("j1")
    assert stored.job_json == '{"job_id": "j1"}'
    assert (stored.status, stored.dataset, stored.attempts, stored.created_at) == (
        JobStatus.QUEUED,
        "datasets/warehouse/v3",
        0,
        T0,
    )
    assert stored.stages == {} and stored.lease_owner is None and stored.reason is None


def test_unknown_job_raises_key_error(ledger: JobLedger) -> None:
    with pytest.raises(KeyError):
        ledger.get("nope")
    with pytest.raises(KeyError):
        ledger.set_status("nope", JobStatus.RUNNING)
    with pytest.raises(KeyError):
        ledger.set_stage("nope", StageRecord(StageName.TRAIN, StageStatus.RUNNING))
    with pytest.raises(KeyError):
        ledger.claim("nope", "worker-a", 60)


def test_stages_and_status_round_trip(ledger: JobLedger) -> None:
    ledger.create(_record("j1"))
    started = T0 + timedelta(minutes=1)
    ledger.set_stage("j1", StageRecord(StageName.FETCH, StageStatus.DONE, T0, started))
    ledger.set_stage("j1", StageRecord(StageName.TRAIN, StageStatus.RUNNING, started, detail="epoch 1/10"))
    ledger.set_stage(
        "j1",
        StageRecord(StageName.TRAIN, StageStatus.RUNNING, started, detail="epoch 3/10 loss 0.12"),
    )
    ledger.set_status("j1", JobStatus.RUNNING)
    stored = ledger.get("j1")
    assert stored.status == JobStatus.RUNNING
    assert list(stored.stages) == [StageName.FETCH, StageName.TRAIN]
    assert stored.stages[StageName.FETCH] == StageRecord(StageName.FETCH, StageStatus.DONE, T0, started)
    assert stored.stages[StageName.TRAIN] == StageRecord(
        StageName.TRAIN, StageStatus.RUNNING, started, None, "epoch 3/10 loss 0.12"
    )
    assert stored.updated_at > T0

    ledger.set_status("j1", JobStatus.FAILED, reason="CUDA out of memory")
    ledger.set_status("j1", JobStatus.SUCCEEDED, model_version="2025.03.01-1")
    stored = ledger.get("j1")
    assert (stored.status, stored.reason, stored.model_version) == (
        JobStatus.SUCCEEDED,
        "CUDA out of memory",  # None leaves the recorded reason in place
        "2025.03.01-1",
    )


def test_claim_has_one_owner_until_the_lease_expires(ledger: JobLedger) -> None:
    ledger.create(_record("j1"))
    assert ledger.claim("j1", "worker-a", 60, now=T0) is True
    assert ledger.claim("j1", "worker-b", 60, now=T0 + timedelta(seconds=30)) is False
    assert ledger.claim("j1", "worker-a", 60, now=T0 + timedelta(seconds=50)) is True  # renewal
    held = ledger.get("j1")
    assert (held.lease_owner, held.attempts) == ("worker-a", 1)
    assert held.lease_expires_at == T0 + timedelta(seconds=110)

    assert ledger.claim("j1", "worker-b", 60, now=T0 + timedelta(seconds=100)) is False
    assert ledger.claim("j1", "worker-b", 60, now=T0 + timedelta(seconds=111)) is True  # a's lease ran out
    assert ledger.claim("j1", "worker-a", 60, now=T0 + timedelta(seconds=112)) is False
    assert ledger.get("j1").attempts == 2

    ledger.release_claim("j1", "worker-a")  # not the holder: nothing happens
    assert ledger.get("j1").lease_owner == "worker-b"
    ledger.release_claim("j1", "worker-b")
    released = ledger.get("j1")
    assert released.lease_owner is None and released.lease_expires_at is None
    assert ledger.claim("j1", "worker-a", 60, now=T0 + timedelta(seconds=113)) is True
    assert ledger.get("j1").attempts == 3


def test_concurrent_claims_have_a_single_winner(ledger: JobLedger) -> None:
    if type(ledger).__name__ == "DynamoJobLedger":
        pytest.skip(
            "moto serves concurrent requests in threads and checks ConditionExpression without a lock "
            "(seen: two winners); DynamoDB applies conditional writes atomically"
        )
    ledger.create(_record("j1"))
    barrier = threading.Barrier(6)
    wins: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        if ledger.claim("j1", owner, 300):
            wins.append(owner)

    threads = [threading.Thread(target=contend, args=(f"worker-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(wins) == 1
    assert ledger.get("j1").lease_owner == wins[0]


def test_list_jobs_newest_first(ledger: JobLedger) -> None:
    for n, minutes in enumerate([5, 1, 30, 12]):
        ledger.create(_record(f"j{n}", created_at=T0 + timedelta(minutes=minutes)))
    assert [r.job_id for r in ledger.list_jobs()] == ["j2", "j3", "j0", "j1"]
    assert [r.job_id for r in ledger.list_jobs(limit=2)] == ["j2", "j3"]
    assert ledger.list_jobs(limit=2)[0].created_at == T0 + timedelta(minutes=30)
