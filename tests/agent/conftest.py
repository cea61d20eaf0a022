from __future__ import annotations

import sys
from pathlib import Path

# Shared helpers (tiny DetectNet ONNX, published model folder, test-double tools) live in tests/engines.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines"))

from collections.abc import Iterator

import pytest

from gpu_worker.ports.store import ObjectStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """The same agent tests on a local folder and on S3 (moto server)."""
    if request.param == "local":
        from gpu_worker.adapters.local_store import LocalFolderStore

        yield LocalFolderStore(tmp_path / "store")
        return
    import boto3

    endpoint = request.getfixturevalue("aws_endpoint")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="fleet")
    from gpu_worker.adapters.s3_store import S3Store

    yield S3Store("fleet", endpoint_url=endpoint, region="us-east-1")
