"""Job queue on an SQS standard queue plus its dead-letter queue.

Dead letters keep their reason: when a failed message has used its last receive, `release` sends it
to the DLQ itself with the reason as a message attribute, then deletes it. The queue's own
RedrivePolicy (maxReceiveCount = max_receives) stays the backstop for workers that died holding a
message; such dead letters read "no acknowledgement after N receives".

Limits of SQS, surfaced rather than hidden:
- SQS accepts any receipt handle ever issued for a message, so an `ack` or `extend` with a stale
  receipt (after another consumer leased the message) cannot be detected: the job ledger's claim is
  what keeps two workers off one job. `LeaseLost` is raised when the message no longer exists.
- A message's total visibility is capped at 12 h: `extend` past it raises `LeaseLost`.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.adapters._aws import error_code, error_message, make_client, unavailable
from gpu_worker.ports.exceptions import LeaseLost
from gpu_worker.ports.queue import DeadLetter, JobQueue, ReceivedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

MAX_VISIBILITY_S = 43200
MAX_WAIT_S = 20  # SQS long polling limit per request
REASON_ATTR = "peoplenet_reason"
COUNT_ATTR = "peoplenet_receive_count"
ID_ATTR = "peoplenet_message_id"
_REASON_LIMIT = 4000  # keep attributes far below SQS's 256 KiB message limit
_PEEK_HIDE_S = 30  # dead_letters() hides DLQ messages this long while paging, then shows them again
_PEEK_LIMIT = 1000


class SqsJobQueue(JobQueue):
    def __init__(
        self,
        queue_url: str,
        dlq_url: str,
        client: SQSClient | None = None,
        *,
        max_receives: int = 3,
        visibility_timeout_s: int = 900,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        if max_receives < 1:
            raise ValueError(f"max_receives must be >= 1, got {max_receives}")
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.max_receives = max_receives
        self.visibility_timeout_s = _check_visibility(visibility_timeout_s)
        self._client: SQSClient = client or make_client("sqs", endpoint_url=endpoint_url, region=region)

    def send(self, body: str, *, delay_s: int = 0) -> str:
        try:
            response = self._client.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=delay_s)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        return response["MessageId"]

    def receive(self, *, wait_s: float = 0.0, visibility_timeout_s: int | None = None) -> ReceivedMessage | None:
        timeout = _check_visibility(self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s)
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            wait = max(0, min(MAX_WAIT_S, math.ceil(remaining)))
            try:
                response = self._client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=timeout,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except (BotoCoreError, ClientError) as exc:
                raise self._translate(exc) from exc
            messages = response.get("Messages", [])
            if messages:
                return _received(messages[0])
            if wait == 0 or time.monotonic() >= deadline:
                return None

    def ack(self, message: ReceivedMessage) -> None:
        try:
            self._client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, message) from exc

    def extend(self, message: ReceivedMessage, visibility_timeout_s: int) -> None:
        self._change_visibility(message, _check_visibility(visibility_timeout_s))

    def release(self, message: ReceivedMessage, *, delay_s: int = 0, error: str | None = None) -> None:
        if message.receive_count < self.max_receives:
            # SQS cannot store the error on the message; only the final one is kept (in the DLQ).
            self._change_visibility(message, min(max(0, math.ceil(delay_s)), MAX_VISIBILITY_S))
            return
        reason = error or f"released after {message.receive_count} receives without success"
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            REASON_ATTR: {"DataType": "String", "StringValue": reason[:_REASON_LIMIT]},
            COUNT_ATTR: {"DataType": "Number", "StringValue": str(message.receive_count)},
            ID_ATTR: {"DataType": "String", "StringValue": message.message_id},
        }
        try:
            # DLQ first, then delete: a failure in between leaves a duplicate, never a lost job.
            self._client.send_message(QueueUrl=self.dlq_url, MessageBody=message.body, MessageAttributes=attributes)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        self.ack(message)

    def dead_letters(self) -> list[DeadLetter]:
        """Peek at the DLQ: page through it with a short visibility, then make everything visible again."""
        seen: dict[str, MessageTypeDef] = {}
        try:
            while len(seen) < _PEEK_LIMIT:
                response = self._client.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=_PEEK_HIDE_S,
                    MessageAttributeNames=["All"],
                )
                batch = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
                if not batch:
                    break
                seen.update((m["MessageId"], m) for m in batch)
            handles = [m["ReceiptHandle"] for m in seen.values()]
            for start in range(0, len(handles), 10):
                self._client.change_message_visibility_batch(
                    QueueUrl=self.dlq_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                        for i, handle in enumerate(handles[start : start + 10])
                    ],
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        return [self._dead_letter(m) for m in seen.values()]

    def approximate_depth(self) -> int:
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        try:
            response = self._client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        attributes = response.get("Attributes", {})
        return sum(int(attributes.get(name, "0")) for name in names)

    # Internals

    def _change_visibility(self, message: ReceivedMessage, timeout: int) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message.receipt, VisibilityTimeout=timeout
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, message) from exc

    def _dead_letter(self, message: MessageTypeDef) -> DeadLetter:
        attrs = {name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()}
        reason, count = attrs.get(REASON_ATTR), attrs.get(COUNT_ATTR)
        return DeadLetter(
            message_id=attrs.get(ID_ATTR) or message["MessageId"],
            body=message["Body"],
            receive_count=int(count) if count else self.max_receives,
            reason=reason or f"no acknowledgement after {self.max_receives} receives",
        )

    def _translate(self, exc: BotoCoreError | ClientError, message: ReceivedMessage | None = None) -> Exception:
        if isinstance(exc, ClientError) and message is not None:
            code, text = error_code(exc), error_message(exc)
            if "43200" in text or "beyond the limit" in text:
                return LeaseLost(
                    f"SQS caps a message's total visibility at 12 h; message {message.message_id} cannot be "
                    "hidden longer. It will be delivered again: keep ownership through the job ledger's claim."
                )
            if code in {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"}:
                return LeaseLost(f"SQS message {message.message_id}: {code}: {text}")
        return unavailable(f"SQS queue {self.queue_url}", exc)


def _check_visibility(seconds: int) -> int:
    if not 0 <= seconds <= MAX_VISIBILITY_S:
        raise ValueError(f"visibility timeout must be within 0..{MAX_VISIBILITY_S} s, got {seconds}")
    return int(seconds)


def _received(message: MessageTypeDef) -> ReceivedMessage:
    return ReceivedMessage(
        message_id=message["MessageId"],
        body=message["Body"],
        receipt=message["ReceiptHandle"],
        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
    )
