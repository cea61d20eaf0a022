"""Get the engine of (model version, platform): pull a peer's, or build it under the build lock.

`engine.json` is the commit marker: uploaded after the engine bytes, create-only. A reader trusts
an engine only when its bytes hash to `engine.json`'s sha256 and the manifest names the reader's
own platform and model version; anything else is refused (`EngineIntegrityError`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gpu_worker.engines.base import (
    ENGINE_FILE,
    ENGINE_MANIFEST_FILE,
    BuildRequest,
    EngineBuilder,
    sha256_file,
    write_atomic,
)
from gpu_worker.engines.exceptions import EngineIntegrityError
from gpu_worker.engines.layout import build_lock_key, engine_key, engine_manifest_key
from gpu_worker.engines.lock import BuildLock
from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import EngineManifest

log = logging.getLogger(__name__)

# (model file, request) to build from; called only by the agent that holds the lock.
SourceProvider = Callable[[], tuple[Path, BuildRequest]]


class EngineOutcome(StrEnum):
    BUILT = "built"  # this host built it (and uploaded it for its peers when given a store)
    DOWNLOADED = "downloaded"  # a peer had built it; verified and pulled
    NO_BUILDER = "no_builder"  # none in the store and no way to build here
    WAIT_TIMEOUT = "wait_timeout"  # another host holds the build lock and has not finished yet
    FAILED = "failed"  # a builder ran here and failed (recorded; the ONNX is still published)


@dataclass(frozen=True)
class EngineStatus:
    outcome: EngineOutcome
    model_version: str
    platform: str | None
    message: str
    manifest: EngineManifest | None = None
    engine_path: Path | None = None  # local, verified copy

    @property
    def built(self) -> bool:
        return self.outcome is EngineOutcome.BUILT

    @property
    def available(self) -> bool:
        return self.outcome in (EngineOutcome.BUILT, EngineOutcome.DOWNLOADED)

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": str(self.outcome),
            "built": self.built,
            "model_version": self.model_version,
            "platform": self.platform,
            "message": self.message,
            "engine": self.manifest.model_dump(mode="json") if self.manifest else None,
        }


def verify_engine(engine_path: Path, manifest: EngineManifest, *, platform: str, model_version: str) -> None:
    if manifest.platform != platform:
        raise EngineIntegrityError(f"engine.json is for platform {manifest.platform}, this host is {platform}")
    if manifest.model_version != model_version:
        raise EngineIntegrityError(f"engine.json is for model {manifest.model_version}, expected {model_version}")
    actual = sha256_file(engine_path)
    if actual != manifest.engine_sha256:
        raise EngineIntegrityError(
            f"engine bytes have sha256 {actual[:16]}..., engine.json says {manifest.engine_sha256[:16]}...: refused"
        )


def fetch_engine(store: ObjectStore, model_version: str, platform: str, dest_dir: Path) -> EngineManifest | None:
    """Download and verify the published engine into dest_dir; None when none is published yet."""
    try:
        manifest = EngineManifest.from_json(store.get_bytes(engine_manifest_key(model_version, platform)))
    except FileNotFoundError:
        return None
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest_dir / f".{ENGINE_FILE}.download"
    try:
        store.download_file(engine_key(model_version, platform), partial)
        verify_engine(partial, manifest, platform=platform, model_version=model_version)
        os.replace(partial, dest_dir / ENGINE_FILE)
    except FileNotFoundError as exc:
        raise EngineIntegrityError(
            f"engine.json of {model_version}/{platform} is published but its engine is not"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    write_atomic(dest_dir / ENGINE_MANIFEST_FILE, manifest.to_json().encode())
    return manifest


def upload_engine(store: ObjectStore, local_dir: Path, manifest: EngineManifest) -> bool:
    """Engine bytes first, then engine.json create-only. False when a peer's engine.json won the race."""
    key = engine_manifest_key(manifest.model_version, manifest.platform)
    if store.exists(key):
        return False
    store.upload_file(local_dir / ENGINE_FILE, engine_key(manifest.model_version, manifest.platform))
    try:
        store.put_bytes(key, manifest.to_json().encode(), if_none_match=True)
    except PreconditionFailed:
        return False
    return True


@dataclass(frozen=True)
class LockPolicy:
    owner: str
    ttl_s: float = 900.0  # renewed every ttl/3 while building
    poll_s: float = 10.0  # how often a waiting agent looks for the engine
    wait_timeout_s: float = 2 * 3600.0  # give up waiting (and try again on the next sync)


def obtain_engine(
    store: ObjectStore,
    model_version: str,
    platform: str,
    builder: EngineBuilder | None,
    source: SourceProvider,
    dest_dir: Path,
    policy: LockPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> EngineStatus:
    """The verified engine in dest_dir: pulled if published, else built here under the build lock."""
    deadline = clock() + policy.wait_timeout_s
    lock = BuildLock(store, build_lock_key(model_version, platform), policy.owner, ttl_s=policy.ttl_s)
    while True:
        manifest = fetch_engine(store, model_version, platform, dest_dir)
        if manifest is not None:
            return _downloaded(manifest, dest_dir)
        if builder is None:
            return EngineStatus(
                EngineOutcome.NO_BUILDER, model_version, platform,
                f"no engine for {platform} in the store and no TensorRT builder on this host",
            )  # fmt: skip
        if lock.try_acquire():
            try:
                return _build_and_upload(store, model_version, platform, builder, source, dest_dir, lock)
            finally:
                lock.release()
        if clock() >= deadline:
            holder = lock.holder()
            owner = holder[0].owner if holder and holder[0] else "another host"
            return EngineStatus(
                EngineOutcome.WAIT_TIMEOUT, model_version, platform,
                f"{owner} is still building the engine for {platform}; will look again",
            )  # fmt: skip
        sleep(policy.poll_s)


def _downloaded(manifest: EngineManifest, dest_dir: Path) -> EngineStatus:
    return EngineStatus(
        EngineOutcome.DOWNLOADED, manifest.model_version, manifest.platform,
        f"pulled the {manifest.precision} engine built by {manifest.builder} for {manifest.platform}",
        manifest=manifest, engine_path=dest_dir / ENGINE_FILE,
    )  # fmt: skip


def _build_and_upload(
    store: ObjectStore,
    model_version: str,
    platform: str,
    builder: EngineBuilder,
    source: SourceProvider,
    dest_dir: Path,
    lock: BuildLock,
) -> EngineStatus:
    # A peer may have committed between our last look and taking the lock.
    manifest = fetch_engine(store, model_version, platform, dest_dir)
    if manifest is not None:
        return _downloaded(manifest, dest_dir)
    model_path, request = source()
    with lock.renewing() as lost:
        manifest = builder.build(model_path, dest_dir, request)
    if lost.is_set():
        log.warning(
            "lost the build lock of %s/%s while building; uploading only if no peer did", model_version, platform
        )
    if upload_engine(store, dest_dir, manifest):
        return EngineStatus(
            EngineOutcome.BUILT, model_version, platform,
            f"built a {manifest.precision} engine with {manifest.builder} for {platform} and uploaded it",
            manifest=manifest, engine_path=dest_dir / ENGINE_FILE,
        )  # fmt: skip
    theirs = fetch_engine(store, model_version, platform, dest_dir)
    if theirs is None:
        raise EngineIntegrityError(f"engine.json of {model_version}/{platform} appeared and vanished")
    return _downloaded(theirs, dest_dir)
