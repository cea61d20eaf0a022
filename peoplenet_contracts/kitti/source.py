"""Where a dataset's files come from: a read-only view of one dataset folder.

A source lists files (relative path -> size) and reads them; it never interprets them. The validator
works only through this interface, so the same checks run on a local folder (CLI, worker, watchdog
inbox) and on an S3 prefix (Lambda, through ranged GETs: no full image download).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path


class DatasetSource(ABC):
    """Read-only access to one dataset folder.

    Paths are relative to the dataset root and '/'-separated (``images/0001.jpg``). Implementations
    raise builtin errors: ``FileNotFoundError`` for a missing file, ``PermissionError`` for a path
    that leaves the dataset folder, ``OSError`` for anything else, so the validator never sees
    vendor errors (an S3 source translates ``ClientError`` at its edge).
    """

    @property
    @abstractmethod
    def location(self) -> str:
        """Human-readable place of the dataset (a folder path or an ``s3://`` URL), for messages."""

    @abstractmethod
    def list_files(self) -> dict[str, int]:
        """Every regular file under the root: relative path -> size in bytes.

        List keys verbatim (an S3 key holding ``..`` must appear as such: the validator rejects it,
        because a worker downloading it would write outside its folder)."""

    @abstractmethod
    def read_text(self, path: str) -> str:
        """The whole file decoded as UTF-8 (raise ``UnicodeDecodeError`` when it is not)."""

    @abstractmethod
    def read_head(self, path: str, nbytes: int) -> bytes:
        """The first ``nbytes`` bytes of the file (fewer when the file is shorter)."""

    def read_bytes(self, path: str) -> bytes:
        """The whole file, for a full image decode. Optional: sources that never decode may keep this."""
        raise NotImplementedError(f"{type(self).__name__} cannot read whole files")

    def rejected_paths(self) -> dict[str, str]:
        """Entries left out of ``list_files`` because they are unsafe or unreadable: path -> why.

        Call after ``list_files``. A local folder reports symlinks leading outside it, broken links,
        sockets and the like here; an S3 prefix has nothing to report."""
        return {}


class LocalDatasetSource(DatasetSource):
    """A dataset folder on the local file system.

    Symlinks are followed only while they stay inside the root: one pointing outside (or a loop) is
    reported by ``rejected_paths`` and refused by every read.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)
        self._real_root = self._root.resolve()
        self._rejected: dict[str, str] = {}

    @property
    def root(self) -> Path:
        return self._root

    @property
    def location(self) -> str:
        return str(self._root)

    def list_files(self) -> dict[str, int]:
        if not self._real_root.is_dir():
            raise NotADirectoryError(f"{self._root} is not a folder")
        files: dict[str, int] = {}
        self._rejected = {}
        self._walk(self._root, "", files, {str(self._real_root)})
        return dict(sorted(files.items()))

    def rejected_paths(self) -> dict[str, str]:
        return dict(self._rejected)

    def _walk(self, folder: Path, prefix: str, files: dict[str, int], active: set[str]) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = prefix + entry.name
                real = os.path.realpath(entry.path)
                if entry.is_symlink() and not self._inside(real):
                    self._rejected[rel] = f"symlink to {real} leads outside the dataset folder"
                elif entry.is_dir():
                    if real in active:  # a link back to one of its own parents
                        self._rejected[rel] = "symlink loop: the folder links back to one of its parents"
                    else:
                        self._walk(Path(entry.path), rel + "/", files, active | {real})
                elif entry.is_file():
                    files[rel] = entry.stat().st_size
                elif entry.is_symlink():
                    self._rejected[rel] = "broken symlink"
                else:
                    self._rejected[rel] = "not a regular file"

    def _inside(self, real: str) -> bool:
        return Path(real).is_relative_to(self._real_root)

    def _resolve(self, path: str) -> Path:
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in {"", ".", ".."} for p in parts):
            raise PermissionError(f"{path!r} is not a plain relative path inside the dataset")
        full = self._root.joinpath(*parts)
        if not self._inside(os.path.realpath(full)):
            raise PermissionError(f"{path} leads outside the dataset folder")
        return full

    def read_text(self, path: str) -> str:
        return self._resolve(path).read_bytes().decode("utf-8")

    def read_head(self, path: str, nbytes: int) -> bytes:
        with self._resolve(path).open("rb") as handle:
            return handle.read(nbytes)

    def read_bytes(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()


class InMemoryDatasetSource(DatasetSource):
    """Files held in a dict (relative path -> bytes): for tests, and for keys no file system allows."""

    def __init__(self, files: dict[str, bytes], location: str = "memory://dataset/") -> None:
        self._files = dict(files)
        self._location = location

    @property
    def location(self) -> str:
        return self._location

    def list_files(self) -> dict[str, int]:
        return {path: len(data) for path, data in sorted(self._files.items())}

    def _get(self, path: str) -> bytes:
        try:
            return self._files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    def read_text(self, path: str) -> str:
        return self._get(path).decode("utf-8")

    def read_head(self, path: str, nbytes: int) -> bytes:
        return self._get(path)[:nbytes]

    def read_bytes(self, path: str) -> bytes:
        return self._get(path)
