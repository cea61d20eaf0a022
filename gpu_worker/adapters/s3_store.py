"""Object store on an S3 bucket.

Conditional writes use S3's own `If-Match` / `If-None-Match` on PutObject (atomic on the server).
Etags are kept exactly as S3 returns them (quoted) and passed back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from gpu_worker.adapters._aws import error_code, make_client, unavailable
from gpu_worker.adapters._keys import check_key, check_prefix
from gpu_worker.ports.exceptions import AdapterUnavailable, PreconditionFailed
from gpu_worker.ports.store import ObjectInfo, ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NotFound"}
_CONFLICT = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}


class S3Store(ObjectStore):
    def __init__(
        self,
        bucket: str,
        client: S3Client | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self._client: S3Client = client or make_client("s3", endpoint_url=endpoint_url, region=region)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=check_key(key))
            return response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def put_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> ObjectInfo:
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        try:
            response = self._client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, **conditions)
        except ClientError as exc:
            # If-Match on a key that is gone answers 404: the object changed since it was read.
            if conditions and error_code(exc) in _MISSING:
                raise PreconditionFailed(f"{self.uri(key)} no longer exists") from exc
            raise self._translate(key, exc) from exc
        except BotoCoreError as exc:
            raise self._translate(key, exc) from exc
        return ObjectInfo(key=key, size=len(data), etag=response["ETag"])

    def head(self, key: str) -> ObjectInfo:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=check_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc
        return ObjectInfo(key=key, size=response["ContentLength"], etag=response["ETag"])

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            # S3 lists keys in UTF-8 binary order, which is Python's str order.
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(key=item["Key"], size=item["Size"], etag=item["ETag"])
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(prefix, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def download_file(self, key: str, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The managed transfer writes to a temp file and renames it: no partial file on failure.
            self._client.download_file(self.bucket, check_key(key), str(path))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc

    def upload_file(self, path: Path, key: str) -> ObjectInfo:
        try:
            # Multipart above 8 MiB; S3 makes the object visible only once complete.
            self._client.upload_file(str(path), self.bucket, check_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(key, exc) from exc
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError of a failed upload
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BotoCoreError | ClientError):
                raise self._translate(key, cause) from exc
            raise AdapterUnavailable(f"S3 bucket {self.bucket!r}: {exc}") from exc
        return self.head(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    def _translate(self, key: str, exc: BotoCoreError | ClientError) -> Exception:
        if isinstance(exc, ClientError):
            code = error_code(exc)
            if code in _MISSING:
                return FileNotFoundError(f"no object at s3://{self.bucket}/{key}")
            if code in _CONFLICT:
                return PreconditionFailed(f"s3://{self.bucket}/{key}: {code}")
        return unavailable(f"S3 bucket {self.bucket!r}", exc)
