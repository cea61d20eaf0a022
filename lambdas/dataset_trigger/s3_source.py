"""A dataset folder on S3 as a `DatasetSource`: one listing plus ranged GETs, never a whole image.

Thread-safe (the validator reads from several threads): it holds only a boto3 client, which is.

Errors: a missing object or a denied read is a fact about the dataset (`FileNotFoundError`,
`PermissionError`: the validator reports it). Anything else (throttling, 5xx, network, after
botocore's retries) raises `S3Unavailable`, which is deliberately NOT an `OSError`: the validator
would turn an `OSError` into a rejection, while a transient failure must fail the invocation so the
message is delivered again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.adapters._aws import error_code, error_message
from peoplenet_contracts.kitti import DatasetSource

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied"}
_EMPTY_RANGE = {"416", "InvalidRange"}  # a ranged GET of an empty object


class S3DatasetSource(DatasetSource):
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"dataset prefix {prefix!r} must end with '/'")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list_files(self) -> dict[str, int]:
        files: dict[str, int] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(self.prefix) :]
                    # Zero-byte "folder/" keys are what the S3 console writes for folders, not files.
                    if relative and not (relative.endswith("/") and item["Size"] == 0):
                        files[relative] = item["Size"]
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(self.prefix, exc) from exc
        return dict(sorted(files.items()))

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def read_head(self, path: str, nbytes: int) -> bytes:
        if nbytes <= 0:
            return b""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(path), Range=f"bytes=0-{nbytes - 1}")
            return response["Body"].read()
        except ClientError as exc:
            if error_code(exc) in _EMPTY_RANGE:
                return b""
            raise self._translate(path, exc) from exc
        except BotoCoreError as exc:
            raise self._translate(path, exc) from exc

    def read_bytes(self, path: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(path, exc) from exc

    def _key(self, path: str) -> str:
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in {"", ".", ".."} for p in parts):
            raise PermissionError(f"{path!r} is not a plain relative path inside the dataset")
        return self.prefix + path

    def _translate(self, path: str, exc: BotoCoreError | ClientError) -> Exception:
        where = f"s3://{self.bucket}/{self.prefix}{path}"
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code in _MISSING:
                return FileNotFoundError(f"{where}: no such object")
            if code in _DENIED:
                return PermissionError(f"{where}: access denied")
            return S3Unavailable(f"{where}: {code}: {error_message(exc)}")
        return S3Unavailable(f"{where}: {exc}")


class S3Unavailable(RuntimeError):
    """S3 failed for a reason unrelated to the dataset; retry the message later."""
