"""sha256 of files, streamed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from peoplenet_contracts.manifests import FileDigest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path, relative: str) -> FileDigest:
    return FileDigest(path=relative, sha256=sha256_file(path), size=path.stat().st_size)
