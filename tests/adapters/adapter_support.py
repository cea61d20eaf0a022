"""Helpers for the adapter tests; children are spawned, so what they run lives here, importable by name."""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.queue import JobQueue

REGION = "us-east-1"


def aws_client(service: str, endpoint: str) -> Any:
    from gpu_worker.adapters._aws import make_client

    return make_client(service, endpoint_url=endpoint, region=REGION)


@dataclass(frozen=True)
class QueueSpec:
    """Enough to open the same queue in another process."""

    kind: str  # "sqlite" | "sqs"
    location: str  # database path or queue URL
    dlq_url: str
    endpoint: str
    visibility_timeout_s: int
    max_receives: int

    def open(self) -> JobQueue:
        if self.kind == "sqlite":
            from gpu_worker.adapters import SqliteJobQueue

            return SqliteJobQueue(
                Path(self.location), visibility_timeout_s=self.visibility_timeout_s, max_receives=self.max_receives
            )
        from gpu_worker.adapters import SqsJobQueue

        return SqsJobQueue(
            self.location,
            self.dlq_url,
            max_receives=self.max_receives,
            visibility_timeout_s=self.visibility_timeout_s,
            endpoint_url=self.endpoint,
            region=REGION,
        )


def drain(spec: QueueSpec, barrier: Barrier, work_s: float, results: Any) -> None:
    """Consume until the queue stays empty; report (message_id, body, receive_count, start, end) per message."""
    queue = spec.open()
    barrier.wait()
    done: list[tuple[str, str, int, float, float]] = []
    while True:
        message = queue.receive(wait_s=1.0)
        if message is None:
            break
        start = time.time()
        time.sleep(work_s)
        end = time.time()
        queue.ack(message)
        done.append((message.message_id, message.body, message.receive_count, start, end))
    results.put(done)


def increment_counter(root: str, key: str, times: int, barrier: Barrier) -> None:
    """Compare-and-swap a counter object `times` times, retrying when the etag moved."""
    from gpu_worker.adapters import LocalFolderStore

    store = LocalFolderStore(Path(root))
    barrier.wait()
    for _ in range(times):
        while True:
            info = store.head(key)
            value = int(store.get_text(key))
            try:
                store.put_text(key, str(value + 1), if_match=info.etag)
                break
            except PreconditionFailed:
                continue
