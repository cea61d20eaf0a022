"""Job queue port: SQS (+ DLQ) or SQLite in WAL mode with leases, receive counts and dead letters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    body: str
    receipt: str  # handle for ack/extend/release; invalid once the lease is lost
    receive_count: int  # 1 on first delivery


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: int
    reason: str | None


class JobQueue(ABC):
    """At-least-once delivery with visibility leases.

    A received message is hidden for `visibility_timeout_s`; unacknowledged it is delivered again.
    After `max_receives` deliveries a message goes to the dead letters with the last recorded error.
    `ack`/`extend`/`release` raise `LeaseLost` when the receipt is no longer valid (SQS cannot tell
    a stale receipt of a message that still exists: there the job ledger's claim guards ownership).
    """

    @abstractmethod
    def send(self, body: str, *, delay_s: int = 0) -> str:
        """Enqueue; returns the message id."""

    @abstractmethod
    def receive(self, *, wait_s: float = 0.0, visibility_timeout_s: int | None = None) -> ReceivedMessage | None:
        """Lease one message, or None when nothing arrives within wait_s."""

    @abstractmethod
    def ack(self, message: ReceivedMessage) -> None:
        """Delete a processed message."""

    @abstractmethod
    def extend(self, message: ReceivedMessage, visibility_timeout_s: int) -> None:
        """Keep the message hidden for another visibility_timeout_s from now (heartbeat)."""

    @abstractmethod
    def release(self, message: ReceivedMessage, *, delay_s: int = 0, error: str | None = None) -> None:
        """Give the message back for redelivery after delay_s, recording the error if any.

        A message that has used its last receive (receive_count >= max_receives) goes to the dead
        letters at once, with error (or "released after N receives ...") as its reason.
        """

    @abstractmethod
    def dead_letters(self) -> list[DeadLetter]: ...

    @abstractmethod
    def approximate_depth(self) -> int:
        """Visible + in-flight messages (for status and autoscaling)."""
