"""Job ledger in a DynamoDB table (partition key `job_id`, string); stages live in the item as a map.

`create` and `claim` are conditional writes, so concurrent submitters and workers cannot both win.
`list_jobs` scans and sorts client-side: the ledger holds one item per retraining job (hundreds, not
millions), which keeps the table free of a secondary index.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.adapters._aws import error_code, make_client, unavailable
from gpu_worker.adapters._ledger_codec import iso, stage_to_dict, stages_from_dict, to_utc
from gpu_worker.ports.ledger import JobLedger, JobRecord, StageRecord
from peoplenet_contracts import JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CONDITION_FAILED = "ConditionalCheckFailedException"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class DynamoJobLedger(JobLedger):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.table_name = table_name
        self._client: DynamoDBClient = client or make_client("dynamodb", endpoint_url=endpoint_url, region=region)

    def create(self, record: JobRecord) -> bool:
        item = {
            "job_id": record.job_id,
            "status": str(record.status),
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
            "job_json": record.job_json,
            "dataset": record.dataset,
            "reason": record.reason,
            "model_version": record.model_version,
            "attempts": record.attempts,
            "lease_owner": record.lease_owner,
            "lease_expires_at": _epoch(record.lease_expires_at) if record.lease_expires_at else None,
            "stages": {str(name): stage_to_dict(stage) for name, stage in record.stages.items()},
        }
        return self._conditionally(
            lambda: self._client.put_item(
                TableName=self.table_name,
                Item=_encode({k: v for k, v in item.items() if v is not None}),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        )

    def get(self, job_id: str) -> JobRecord:
        try:
            response = self._client.get_item(TableName=self.table_name, Key=_key(job_id), ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        if "Item" not in response:
            raise KeyError(job_id)
        return _record(_decode(response["Item"]))

    def list_jobs(self, *, limit: int = 50) -> list[JobRecord]:
        items: list[dict[str, Any]] = []
        try:
            for page in self._client.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True):
                items.extend(_decode(item) for item in page.get("Items", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from exc
        items.sort(key=lambda item: item["created_at"], reverse=True)  # fixed-width ISO: string order = time
        return [_record(item) for item in items[:limit]]

    def set_status(
        self, job_id: str, status: JobStatus, *, reason: str | None = None, model_version: str | None = None
    ) -> None:
        assignments = {"status": str(status), "updated_at": iso(to_utc(None))}
        if reason is not None:
            assignments["reason"] = reason
        if model_version is not None:
            assignments["model_version"] = model_version
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in assignments)
        self._update_existing(job_id, expression, {f"#{n}": n for n in assignments}, assignments)

    def set_stage(self, job_id: str, stage: StageRecord) -> None:
        self._update_existing(
            job_id,
            "SET #stages.#stage = :stage, #updated_at = :updated_at",
            {"#stages": "stages", "#stage": str(stage.name), "#updated_at": "updated_at"},
            {"stage": stage_to_dict(stage), "updated_at": iso(to_utc(None))},
        )

    def claim(self, job_id: str, owner: str, lease_s: int, now: datetime | None = None) -> bool:
        moment = _epoch(to_utc(now))
        names = {"#owner": "lease_owner", "#expires": "lease_expires_at"}
        renewed = self._conditional_update(
            job_id,
            "SET #expires = :expires",
            "#owner = :owner",
            names,
            {":owner": owner, ":expires": moment + lease_s},
        )
        if renewed:
            return True
        taken = self._conditional_update(
            job_id,
            "SET #owner = :owner, #expires = :expires, #updated = :updated ADD #attempts :one",
            "attribute_exists(job_id) AND (attribute_not_exists(#owner) OR #expires <= :now)",
            {**names, "#updated": "updated_at", "#attempts": "attempts"},
            {":owner": owner, ":expires": moment + lease_s, ":now": moment, ":updated": iso(to_utc(None)), ":one": 1},
        )
        if not taken:
            self.get(job_id)  # KeyError when the job does not exist
        return taken

    def release_claim(self, job_id: str, owner: str) -> None:
        self._conditional_update(
            job_id, "REMOVE #owner, #expires", "#owner = :owner",
            {"#owner": "lease_owner", "#expires": "lease_expires_at"}, {":owner": owner},
        )  # fmt: skip

    # Internals

    def _update_existing(self, job_id: str, expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
        done = self._conditional_update(
            job_id, expression, "attribute_exists(job_id)", names, {f":{k}": v for k, v in values.items()}
        )
        if not done:
            raise KeyError(job_id)

    def _conditional_update(
        self, job_id: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        return self._conditionally(
            lambda: self._client.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_encode(values),
            )
        )

    def _conditionally(self, write: Callable[[], object]) -> bool:
        """Run a conditional write: False when its condition failed; other errors translated at the edge."""
        try:
            write()
        except ClientError as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return False
            raise self._translate(exc) from exc
        except BotoCoreError as exc:
            raise self._translate(exc) from exc
        return True

    def _translate(self, exc: BotoCoreError | ClientError) -> Exception:
        return unavailable(f"DynamoDB table {self.table_name!r}", exc)


def _epoch(moment: datetime) -> Decimal:
    return Decimal(str(round(to_utc(moment).timestamp(), 6)))


def _key(job_id: str) -> dict[str, Any]:
    return {"job_id": {"S": job_id}}


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _record(item: dict[str, Any]) -> JobRecord:
    expires = item.get("lease_expires_at")
    return JobRecord(
        job_id=item["job_id"],
        status=JobStatus(item["status"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        updated_at=datetime.fromisoformat(item["updated_at"]),
        job_json=item["job_json"],
        dataset=item.get("dataset", ""),
        reason=item.get("reason"),
        model_version=item.get("model_version"),
        attempts=int(item.get("attempts", 0)),
        lease_owner=item.get("lease_owner"),
        lease_expires_at=None if expires is None else datetime.fromtimestamp(float(expires), tz=UTC),
        stages=stages_from_dict(item.get("stages", {})),
    )
