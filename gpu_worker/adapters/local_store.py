"""Object store on a local folder, with the same key layout as the S3 bucket.

Writes are atomic (temp file in the same file system + `os.replace`), so readers see the old or the
new object, never a partial one. Every write takes an `flock` on one lock file while it checks its
condition and renames, which makes `if_match` / `if_none_match` race-safe across threads and
processes. The etag is `<mtime_ns>-<size>` in hex; under the lock each new version of a key gets an
mtime strictly above the previous one, so two versions never share an etag even when written within
one clock tick with the same size.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from gpu_worker.adapters._keys import RESERVED_PREFIX, check_key, check_prefix
from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectInfo, ObjectStore

_MTIME_STEPS_NS = (1, 1_000_000_000, 2_000_000_000)  # ns precision; else 1 s or 2 s file systems


def _etag(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


class LocalFolderStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._internal = self.root / RESERVED_PREFIX
        self._internal.mkdir(parents=True, exist_ok=True)

    # Primitives

    def get_bytes(self, key: str) -> bytes:
        path = self._existing(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no object at {self.uri(key)}") from None

    def put_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> ObjectInfo:
        target = self._path(key)
        staged = self._stage()
        try:
            with staged.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return self._commit(key, target, staged, if_match=if_match, if_none_match=if_none_match)
        finally:
            staged.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo:
        path = self._existing(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"no object at {self.uri(key)}") from None
        return ObjectInfo(key=key, size=stat.st_size, etag=_etag(stat))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            current = Path(dirpath)
            if current == self.root and RESERVED_PREFIX in dirnames:
                dirnames.remove(RESERVED_PREFIX)
            for name in filenames:
                path = current / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix) or not self._inside_root(path):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                found.append(ObjectInfo(key=key, size=stat.st_size, etag=_etag(stat)))
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._lock(), suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            path.unlink()

    def download_file(self, key: str, path: Path) -> None:
        source = self._existing(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, path)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no object at {self.uri(key)}") from None
        finally:
            partial.unlink(missing_ok=True)

    def upload_file(self, path: Path, key: str) -> ObjectInfo:
        target = self._path(key)
        staged = self._stage()
        try:
            shutil.copyfile(path, staged)
            return self._commit(key, target, staged, if_match=None, if_none_match=False)
        finally:
            staged.unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    # Internals

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        if not self._inside_root(path):
            raise ValueError(f"object key {key!r} resolves outside the store root {self.root}")
        return path

    def _inside_root(self, path: Path) -> bool:
        # resolve() follows symlinks, so a link pointing outside the root is refused too.
        return path.resolve().is_relative_to(self.root)

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object at {self.uri(key)}")
        return path

    def _stage(self) -> Path:
        return self._internal / f"tmp-{uuid.uuid4().hex}"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # flock locks belong to the open file description: threads and processes both exclude each other.
        with (self._internal / "lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _commit(self, key: str, target: Path, staged: Path, *, if_match: str | None, if_none_match: bool) -> ObjectInfo:
        with self._lock():
            try:
                current: os.stat_result | None = target.stat() if target.is_file() else None
            except FileNotFoundError:
                current = None
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{self.uri(key)} already exists")
            if if_match is not None and (current is None or _etag(current) != if_match):
                raise PreconditionFailed(f"{self.uri(key)} changed: etag is not {if_match}")
            self._advance_mtime(staged, current)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
            except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
                raise ValueError(
                    f"object key {key!r} clashes with an existing object or folder "
                    "(a local store cannot hold both 'a' and 'a/b')"
                ) from exc
            stat = target.stat()
        return ObjectInfo(key=key, size=stat.st_size, etag=_etag(stat))

    @staticmethod
    def _advance_mtime(staged: Path, current: os.stat_result | None) -> None:
        """Give the new version an mtime strictly above the current one's (unique etags per key)."""
        now_ns = time.time_ns()
        if current is None or now_ns > current.st_mtime_ns:
            os.utime(staged, ns=(now_ns, now_ns))
            if current is None or staged.stat().st_mtime_ns > current.st_mtime_ns:
                return
        assert current is not None  # only an existing version can be ahead of the clock
        for step in _MTIME_STEPS_NS:
            wanted = current.st_mtime_ns + step
            os.utime(staged, ns=(wanted, wanted))
            if staged.stat().st_mtime_ns > current.st_mtime_ns:
                return
        raise OSError(f"cannot give {staged} an mtime after {current.st_mtime_ns} ns")
