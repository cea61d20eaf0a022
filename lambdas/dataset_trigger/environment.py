"""The trigger's configuration and adapters, from the function's environment (set by template.yaml).

DATA_BUCKET, JOBS_QUEUE_URL, JOBS_DLQ_URL, JOBS_TABLE, IDEMPOTENCY_TABLE, EVENTS_TOPIC_ARN; the
endpoint (a moto server in tests) from AWS_ENDPOINT_URL, the region from AWS_REGION.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpu_worker.adapters.factory import Adapters, build_adapters
from gpu_worker.config import AwsSettings, Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_REQUIRED = ("DATA_BUCKET", "JOBS_QUEUE_URL", "JOBS_DLQ_URL", "JOBS_TABLE", "IDEMPOTENCY_TABLE", "EVENTS_TOPIC_ARN")
DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600


class TriggerConfigError(RuntimeError):
    """The function's environment lacks a setting (a deployment error, not a dataset error)."""


@dataclass(frozen=True)
class TriggerConfig:
    bucket: str
    jobs_queue_url: str
    jobs_dlq_url: str
    jobs_table: str
    idempotency_table: str
    events_topic_arn: str
    region: str | None = None
    endpoint_url: str | None = None
    idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TriggerConfig:
        env = os.environ if env is None else env
        if missing := [name for name in _REQUIRED if not env.get(name)]:
            raise TriggerConfigError(f"environment variables missing: {', '.join(missing)}")
        return cls(
            bucket=env["DATA_BUCKET"],
            jobs_queue_url=env["JOBS_QUEUE_URL"],
            jobs_dlq_url=env["JOBS_DLQ_URL"],
            jobs_table=env["JOBS_TABLE"],
            idempotency_table=env["IDEMPOTENCY_TABLE"],
            events_topic_arn=env["EVENTS_TOPIC_ARN"],
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            idempotency_ttl_s=int(env.get("IDEMPOTENCY_TTL_S", DEFAULT_IDEMPOTENCY_TTL_S)),
        )

    def settings(self) -> Settings:
        """The worker's Settings in aws mode, so the Lambda and the worker build adapters the same way."""
        aws = AwsSettings(
            bucket=self.bucket,
            jobs_queue_url=self.jobs_queue_url,
            jobs_dlq_url=self.jobs_dlq_url,
            jobs_table=self.jobs_table,
            idempotency_table=self.idempotency_table,
            events_topic_arn=self.events_topic_arn,
            endpoint_url=self.endpoint_url,
            **({"region": self.region} if self.region else {}),
        )
        return Settings(mode="aws", aws=aws)

    def adapters(self) -> Adapters:
        return build_adapters(self.settings())

    def s3_client(self) -> S3Client:
        from gpu_worker.adapters._aws import make_client

        client: S3Client = make_client("s3", endpoint_url=self.endpoint_url, region=self.region)
        return client
