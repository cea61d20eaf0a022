"""Object store port: S3 or a local folder with the same '/'-separated key layout."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # opaque version token; used for conditional writes (If-Match)


class ObjectStore(ABC):
    """Backends implement the primitives; helpers below are derived once here.

    Keys are relative, '/'-separated, without '..'. Missing keys raise FileNotFoundError.
    Conditional writes raise `PreconditionFailed`.
    """

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> ObjectInfo:
        """Write atomically (readers see old or new, never partial).

        if_match: only if the current etag equals it; if_none_match: only if the key does not exist.
        """

    @abstractmethod
    def head(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under prefix (recursive), sorted by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete; deleting a missing key is not an error."""

    @abstractmethod
    def download_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def upload_file(self, path: Path, key: str) -> ObjectInfo: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """Human-readable location (file:///... or s3://bucket/key)."""

    # Derived helpers
    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except FileNotFoundError:
            return False
        return True

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8")

    def put_text(self, key: str, text: str, **conditions: object) -> ObjectInfo:
        return self.put_bytes(key, text.encode("utf-8"), **conditions)  # type: ignore[arg-type]

    def download_prefix(self, prefix: str, dest: Path) -> list[Path]:
        """Copy every object under prefix into dest, keeping relative paths."""
        paths = []
        for info in self.list_objects(prefix):
            relative = info.key[len(prefix) :].lstrip("/")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.download_file(info.key, target)
            paths.append(target)
        return paths

    def upload_dir(self, src: Path, prefix: str) -> list[ObjectInfo]:
        """Upload every file under src to prefix + relative path (sorted order)."""
        infos = []
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            infos.append(self.upload_file(path, prefix.rstrip("/") + "/" + path.relative_to(src).as_posix()))
        return infos
