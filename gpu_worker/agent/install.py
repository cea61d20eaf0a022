"""Atomic install of an engine set (engine, labels, nvinfer config, ONNX) into a DeepStream folder.

Layout of DIR:
    .sets/<set>/          one complete set per install (files + installed.json), never modified
    .current -> .sets/<set>     swapped by one rename: DeepStream sees the old set or the new one
    .previous -> .sets/<set>    the set before, for `agent rollback`
    peoplenet.engine -> .current/peoplenet.engine   (and the same for every installed file)
A set is copied into `.sets/.staging-*` (each file fsynced), renamed into place, and only then
made current; a crash at any point leaves the current set untouched and a staging folder that the
next install removes. Mount DIR (not single files) into DeepStream's container: a file bind mount
would pin the old inode.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from gpu_worker.errors import UserError

SETS = ".sets"
CURRENT = ".current"
PREVIOUS = ".previous"
STATE_FILE = "installed.json"
_STAGING = ".staging-"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class InstalledSet:
    model_version: str
    platform: str
    engine_sha256: str
    precision: str
    installed_at: float
    files: tuple[str, ...]
    name: str = ""  # folder under .sets/, filled when read back

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "name"}, indent=2)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_copy(source: Path, target: Path) -> None:
    """Copy through a temp file in target's folder: fsync, then rename; never a partial target."""
    partial = target.with_name(f".{target.name}.partial")
    with source.open("rb") as src, partial.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(partial, target)


def _symlink_atomic(link: Path, target: str) -> None:
    temp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(target, temp)
    os.replace(temp, link)


def _set_of(link: Path) -> str | None:
    try:
        return Path(os.readlink(link)).name
    except (FileNotFoundError, OSError):
        return None


def read_set(deepstream_dir: Path, which: str = CURRENT) -> InstalledSet | None:
    name = _set_of(deepstream_dir / which)
    if name is None:
        return None
    try:
        raw = json.loads((deepstream_dir / SETS / name / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    raw["files"] = tuple(raw.get("files", ()))
    return InstalledSet(**raw, name=name)


def clean_staging(deepstream_dir: Path) -> None:
    sets = deepstream_dir / SETS
    if sets.is_dir():
        for leftover in sets.glob(f"{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _adopt_plain_files(deepstream_dir: Path, names: tuple[str, ...]) -> None:
    """A manual setup's regular files become a 'legacy' set first, so rollback can return to them."""
    plain = [n for n in names if (deepstream_dir / n).is_file() and not (deepstream_dir / n).is_symlink()]
    if not plain or (deepstream_dir / CURRENT).exists():
        return
    name = f"legacy-{int(time.time())}"
    staging = deepstream_dir / SETS / f"{_STAGING}{name}"
    staging.mkdir(parents=True)
    for file_name in plain:
        durable_copy(deepstream_dir / file_name, staging / file_name)
    state = InstalledSet("legacy", "unknown", "", "unknown", time.time(), tuple(plain))
    (staging / STATE_FILE).write_text(state.to_json())
    os.replace(staging, deepstream_dir / SETS / name)
    _symlink_atomic(deepstream_dir / CURRENT, f"{SETS}/{name}")
    for file_name in plain:  # same bytes through the link: DeepStream sees no change
        _symlink_atomic(deepstream_dir / file_name, f"{CURRENT}/{file_name}")


def install_set(deepstream_dir: Path, files: Mapping[str, Path], state: InstalledSet) -> InstalledSet:
    """Copy files (name in DIR -> source) as a new set and make it current; the old one becomes previous."""
    deepstream_dir.mkdir(parents=True, exist_ok=True)
    clean_staging(deepstream_dir)
    _adopt_plain_files(deepstream_dir, tuple(files))
    name = f"{state.model_version}-{state.engine_sha256[:12]}-{uuid.uuid4().hex[:6]}"
    staging = deepstream_dir / SETS / f"{_STAGING}{name}"
    staging.mkdir(parents=True)
    for file_name, source in files.items():
        durable_copy(source, staging / file_name)
    (staging / STATE_FILE).write_text(state.to_json())
    _fsync_dir(staging)
    os.replace(staging, deepstream_dir / SETS / name)
    _fsync_dir(deepstream_dir / SETS)
    _switch(deepstream_dir, name, tuple(files))
    installed = read_set(deepstream_dir)
    assert installed is not None
    return installed


def _switch(deepstream_dir: Path, name: str, names: tuple[str, ...]) -> None:
    old = _set_of(deepstream_dir / CURRENT)
    _symlink_atomic(deepstream_dir / CURRENT, f"{SETS}/{name}")  # the one atomic step that matters
    if old is not None and old != name:
        _symlink_atomic(deepstream_dir / PREVIOUS, f"{SETS}/{old}")
    for file_name in names:
        link = deepstream_dir / file_name
        if not link.is_symlink() or os.readlink(link) != f"{CURRENT}/{file_name}":
            _symlink_atomic(link, f"{CURRENT}/{file_name}")
    _fsync_dir(deepstream_dir)
    _prune(deepstream_dir)


def _prune(deepstream_dir: Path) -> None:
    keep = {_set_of(deepstream_dir / CURRENT), _set_of(deepstream_dir / PREVIOUS)}
    for folder in (deepstream_dir / SETS).iterdir():
        if folder.name not in keep and not folder.name.startswith(_STAGING):
            shutil.rmtree(folder, ignore_errors=True)


def rollback(deepstream_dir: Path) -> InstalledSet:
    """Make the previous set current again (and the current one previous)."""
    previous = read_set(deepstream_dir, PREVIOUS)
    if previous is None:
        raise UserError(f"{deepstream_dir} has no previous engine set to roll back to")
    _switch(deepstream_dir, previous.name, previous.files)
    current = read_set(deepstream_dir)
    assert current is not None
    return current
