"""File digests for manifests."""

from __future__ import annotations

from pathlib import Path

from gpu_worker.files import sha256_file
from peoplenet_contracts.manifests import FileDigest


def file_digest(path: Path, relative: str) -> FileDigest:
    return FileDigest(path=relative, sha256=sha256_file(path), size=path.stat().st_size)
