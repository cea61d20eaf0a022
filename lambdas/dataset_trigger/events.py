"""Parser models for what reaches the trigger: S3 notifications, EventBridge "Object Created", s3:TestEvent.

The bodies arrive as SQS message bodies (S3 -> SQS, EventBridge rule -> SQS, S3 -> SNS -> SQS) or,
for EventBridge, as the Lambda event itself. Models keep only the fields the trigger uses and
ignore the rest: Powertools' stock S3 models require `userIdentity`, `requestParameters` and
`responseElements`, which emulators (moto) omit, and EventBridge's object ETag is spelt `etag` by
AWS but `eTag` by moto; both are accepted here.

Keys in S3 notifications are URL-encoded ("my set/v 1" arrives as "my+set/v+1"): `S3ObjectRef.key`
is always the decoded key.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Json, TypeAdapter

MANIFEST_NAME = "manifest.json"
DATASETS_ROOT = "datasets/"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class S3ObjectRef(_Lenient):
    """One created object, decoded; the idempotency key is (bucket, key, etag)."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    version_id: str | None = None

    @property
    def is_dataset_manifest(self) -> bool:
        """datasets/<name>/<version>/manifest.json, or any folder below datasets/ (never datasets/ itself)."""
        folder, _, name = self.key.rpartition("/")
        return name == MANIFEST_NAME and folder.startswith(DATASETS_ROOT) and len(folder) > len(DATASETS_ROOT)

    @property
    def folder(self) -> str:
        """The key prefix of the object's folder, ending in '/'."""
        return self.key.rpartition("/")[0] + "/"


def _plain_etag(value: str | None) -> str | None:
    # The S3 API quotes ETags, notifications do not: compare them unquoted.
    return value.strip('"') if value else value


# ---- S3 event notification: {"Records": [...]}, delivered to SQS, SNS or Lambda ----
class _S3Bucket(_Lenient):
    name: str


class _S3Object(_Lenient):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None


class _S3Entity(_Lenient):
    bucket: _S3Bucket
    object: _S3Object


class S3NotificationRecord(_Lenient):
    eventSource: Literal["aws:s3"]
    eventName: str = Field(description="e.g. ObjectCreated:Put, ObjectCreated:CompleteMultipartUpload")
    s3: _S3Entity

    @property
    def is_object_created(self) -> bool:
        return self.eventName.startswith("ObjectCreated:")


class S3Notification(_Lenient):
    Records: list[S3NotificationRecord] = Field(min_length=1)


# ---- s3:TestEvent: sent once when a notification configuration is saved ----
class S3TestEvent(_Lenient):
    Service: Literal["Amazon S3"]
    Event: Literal["s3:TestEvent"]
    Bucket: str


# ---- EventBridge "Object Created" (S3 with EventBridge notifications on) ----
class _EventBridgeBucket(_Lenient):
    name: str


class _EventBridgeObject(_Lenient):
    key: str
    size: int | None = None
    etag: str | None = Field(default=None, validation_alias=AliasChoices("etag", "eTag"))
    version_id: str | None = Field(default=None, validation_alias=AliasChoices("version-id", "versionId"))


class _EventBridgeDetail(_Lenient):
    bucket: _EventBridgeBucket
    object: _EventBridgeObject


class EventBridgeS3Event(_Lenient):
    source: Literal["aws.s3"]
    detail_type: str = Field(validation_alias=AliasChoices("detail-type", "detail_type"))
    detail: _EventBridgeDetail

    @property
    def is_object_created(self) -> bool:
        return self.detail_type == "Object Created"


# ---- S3 -> SNS -> SQS without raw message delivery: the notification is the SNS Message ----
class SnsEnvelope(_Lenient):
    Type: Literal["Notification"]
    Message: Json[S3Notification | S3TestEvent | EventBridgeS3Event]


TriggerBody = Annotated[
    S3Notification | S3TestEvent | EventBridgeS3Event | SnsEnvelope, Field(union_mode="left_to_right")
]
_BODY: TypeAdapter[TriggerBody] = TypeAdapter(TriggerBody)


def parse_body(raw: str | bytes) -> TriggerBody:
    """An SQS message body (or an EventBridge event as JSON); raises pydantic's ValidationError."""
    return _BODY.validate_json(raw)


def parse_event(event: object) -> TriggerBody:
    """An already-decoded event (a direct EventBridge invocation)."""
    return _BODY.validate_python(event)


def created_objects(body: TriggerBody) -> list[S3ObjectRef]:
    """Every object the message reports as created; none for a test event or other event types."""
    if isinstance(body, SnsEnvelope):
        return created_objects(body.Message)
    if isinstance(body, S3TestEvent):
        return []
    if isinstance(body, EventBridgeS3Event):
        if not body.is_object_created:
            return []
        obj = body.detail.object
        # Decoded like notification keys: dataset keys (names limited to [A-Za-z0-9._-]) read the same
        # whether the sender encoded them (AWS notifications) or not (moto's EventBridge events).
        return [
            S3ObjectRef(
                bucket=body.detail.bucket.name,
                key=unquote_plus(obj.key),
                etag=_plain_etag(obj.etag),
                size=obj.size,
                version_id=obj.version_id,
            )
        ]
    return [
        S3ObjectRef(
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.object.key),
            etag=_plain_etag(record.s3.object.eTag),
            size=record.s3.object.size,
            version_id=record.s3.object.versionId,
        )
        for record in body.Records
        if record.is_object_created
    ]
