"""boto3 plumbing shared by the AWS adapters: client creation and translation of botocore errors."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.ports.exceptions import AdapterUnavailable

# SQS long polls hold a request for up to 20 s, so reads wait longer than that.
READ_TIMEOUT_S = 40
CONNECT_TIMEOUT_S = 5


def make_client(service: str, *, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A client with short connect timeouts and standard retries; path-style S3 for custom endpoints."""
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        config=config,
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def unavailable(what: str, exc: BotoCoreError | ClientError) -> AdapterUnavailable:
    """A service error callers cannot act on beyond retrying later: endpoint down, resource missing, denied."""
    detail = f"{error_code(exc)}: {error_message(exc)}".strip(": ") if isinstance(exc, ClientError) else str(exc)
    return AdapterUnavailable(f"{what}: {detail}")
