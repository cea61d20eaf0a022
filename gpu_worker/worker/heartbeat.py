"""Keeps a leased message hidden and the job's ledger lease alive while a stage runs."""

from __future__ import annotations

import logging

from gpu_worker.periodic import PeriodicTask
from gpu_worker.ports.exceptions import LeaseLost
from gpu_worker.ports.ledger import JobLedger
from gpu_worker.ports.queue import JobQueue, ReceivedMessage

log = logging.getLogger(__name__)


class Heartbeat(PeriodicTask):
    """Every interval: extend the message's visibility and renew the ledger claim.

    SQS caps a message's total invisibility at 12 hours; past it `extend` fails and the message may be
    delivered again. The ledger claim outlives that cap, so the worker that receives the duplicate sees
    the job is held and steps back instead of running it twice.
    """

    def __init__(
        self,
        queue: JobQueue,
        ledger: JobLedger,
        message: ReceivedMessage,
        job_id: str,
        owner: str,
        visibility_timeout_s: int,
        interval_s: float,
    ) -> None:
        super().__init__(interval_s, f"heartbeat-{job_id}")
        self.queue = queue
        self.ledger = ledger
        self.message = message
        self.job_id = job_id
        self.owner = owner
        self.visibility_timeout_s = visibility_timeout_s
        self.queue_lease_lost = False

    def beat(self) -> None:
        if not self.queue_lease_lost:
            try:
                self.queue.extend(self.message, self.visibility_timeout_s)
            except LeaseLost as exc:
                self.queue_lease_lost = True
                log.warning(
                    "queue lease lost (%s); the ledger lease keeps the job ours", exc, extra={"job_id": self.job_id}
                )
        self.ledger.claim(self.job_id, self.owner, self.visibility_timeout_s)

    def tick(self) -> None:
        self.beat()

    def log_context(self) -> dict[str, str]:
        return {"job_id": self.job_id}
