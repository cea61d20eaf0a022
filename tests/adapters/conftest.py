"""Fixtures building each port's adapters: local ones on tmp_path, AWS ones on the moto server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from adapter_support import REGION, QueueSpec, aws_client

from gpu_worker.ports.ledger import JobLedger
from gpu_worker.ports.queue import JobQueue
from gpu_worker.ports.store import ObjectStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        from gpu_worker.adapters import LocalFolderStore

        return LocalFolderStore(tmp_path / "store")
    from gpu_worker.adapters import S3Store
    from gpu_worker.adapters.aws_setup import create_bucket

    client = aws_client("s3", request.getfixturevalue("aws_endpoint"))
    create_bucket(client, "models-bucket", REGION)
    return S3Store("models-bucket", client=client)


QueueSpecFactory = Callable[..., QueueSpec]


@pytest.fixture(params=["sqlite", "sqs"])
def queue_spec(request: pytest.FixtureRequest, tmp_path: Path) -> QueueSpecFactory:
    """Makes a fresh, empty queue (and its DLQ) and returns a picklable spec to open it anywhere."""

    def make(*, visibility_timeout_s: int = 1, max_receives: int = 3) -> QueueSpec:
        if request.param == "sqlite":
            db = tmp_path / f"state-{uuid.uuid4().hex[:8]}.sqlite"
            return QueueSpec("sqlite", str(db), "", "", visibility_timeout_s, max_receives)
        from gpu_worker.adapters.aws_setup import create_queue_pair

        endpoint = request.getfixturevalue("aws_endpoint")
        url, dlq = create_queue_pair(
            aws_client("sqs", endpoint),
            f"jobs-{uuid.uuid4().hex[:8]}",
            max_receives=max_receives,
            visibility_timeout_s=visibility_timeout_s,
        )
        return QueueSpec("sqs", url, dlq, endpoint, visibility_timeout_s, max_receives)

    return make


@pytest.fixture
def make_queue(queue_spec: QueueSpecFactory) -> Callable[..., JobQueue]:
    return lambda **kwargs: queue_spec(**kwargs).open()


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> JobLedger:
    if request.param == "sqlite":
        from gpu_worker.adapters import SqliteJobLedger

        return SqliteJobLedger(tmp_path / "state.sqlite")
    from gpu_worker.adapters import DynamoJobLedger
    from gpu_worker.adapters.aws_setup import create_jobs_table

    client = aws_client("dynamodb", request.getfixturevalue("aws_endpoint"))
    create_jobs_table(client, "jobs")
    return DynamoJobLedger("jobs", client=client)
