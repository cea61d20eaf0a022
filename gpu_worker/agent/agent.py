"""The DeepStream-host agent: follow a channel, get the engine for this platform, install atomically.

One sync: read the channel pointer; if the installed set is that model for this platform, done.
Otherwise pull the model (verified against its manifest), get the engine (pulled from a peer, or
built here under the fleet-wide build lock and uploaded), generate the nvinfer config from the
model and engine manifests, install the set atomically, then run the post-install command.
Any refusal (sha256 mismatch, inconsistent model) leaves the installed set as it was.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from gpu_worker.agent.events import ChannelWatcher, PollingWatcher
from gpu_worker.agent.install import InstalledSet, install_set, read_set
from gpu_worker.deepstream import LABELS_FILE, NVINFER_CONFIG_FILE, DeepStreamConfigError, write_deepstream_config
from gpu_worker.engines.base import ENGINE_FILE, BuildRequest, EngineBuilder
from gpu_worker.engines.distribution import EngineOutcome, LockPolicy, obtain_engine
from gpu_worker.engines.exceptions import BuildRequestError, EngineBuildError, EngineIntegrityError, ModelFormatError
from gpu_worker.engines.layout import engine_key
from gpu_worker.engines.platform import PlatformFacts
from gpu_worker.engines.stage import choose_source, download_model
from gpu_worker.pipeline.channels import read_channel
from gpu_worker.ports.notifier import Notifier
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import EngineBuilt, Precision

log = logging.getLogger(__name__)


class SyncOutcome(StrEnum):
    INSTALLED = "installed"
    UP_TO_DATE = "up_to_date"
    NO_CHANNEL = "no_channel"  # the channel pointer does not exist yet
    WAITING = "waiting"  # a peer is still building; try again later
    NO_BUILDER = "no_builder"
    REFUSED = "refused"  # integrity or consistency check failed; old set kept
    FAILED = "failed"  # build failed here; old set kept


@dataclass(frozen=True)
class SyncResult:
    outcome: SyncOutcome
    message: str
    model_version: str | None = None
    engine_outcome: EngineOutcome | None = None
    installed: InstalledSet | None = None
    post_install_rc: int | None = None


@dataclass
class AgentConfig:
    deepstream_dir: Path
    work_dir: Path
    owner: str
    channel: str = "production"
    poll_interval_s: float = 60.0
    post_install: str | None = None
    precision: Precision | None = None  # None: int8 when the model has a Q/DQ ONNX, else fp16
    max_batch: int = 4
    batch_size: int | None = None  # nvinfer batch-size; None: the engine's opt batch
    lock_ttl_s: float = 900.0
    build_wait_timeout_s: float = 2 * 3600.0
    extra_env: dict[str, str] = field(default_factory=dict)


class Agent:
    def __init__(
        self,
        store: ObjectStore,
        facts: PlatformFacts,
        builder: EngineBuilder | None,
        config: AgentConfig,
        *,
        notifier: Notifier | None = None,
        watcher: ChannelWatcher | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.facts = facts
        self.platform = facts.require_platform_key()
        self.builder = builder
        self.config = config
        self.notifier = notifier
        self.watcher = watcher or PollingWatcher()
        self.sleep = sleep

    def sync_once(self) -> SyncResult:
        pointer, _ = read_channel(self.store, self.config.channel)
        if pointer is None:
            return SyncResult(SyncOutcome.NO_CHANNEL, f"channel {self.config.channel!r} is not set yet")
        version = pointer.model_version
        current = read_set(self.config.deepstream_dir)
        if current is not None and current.model_version == version and current.platform == self.platform:
            return SyncResult(SyncOutcome.UP_TO_DATE, f"{version} is installed", version, installed=current)
        try:
            return self._install(version)
        except (EngineIntegrityError, DeepStreamConfigError, ModelFormatError, BuildRequestError) as exc:
            log.error("refused %s: %s", version, exc)
            return SyncResult(SyncOutcome.REFUSED, f"refused {version}: {exc}; the installed set stays", version)
        except EngineBuildError as exc:
            log.error("engine build for %s failed: %s", version, exc)
            return SyncResult(SyncOutcome.FAILED, f"engine build for {version} failed: {exc}", version)

    def _install(self, version: str) -> SyncResult:
        work = self.config.work_dir / version
        model_dir = work / "model"
        manifest = download_model(self.store, version, model_dir)
        cfg = self.config

        def source() -> tuple[Path, BuildRequest]:
            return choose_source(
                model_dir, version, cfg.precision, input_dims=manifest.input_dims, max_batch=cfg.max_batch
            )

        policy = LockPolicy(owner=cfg.owner, ttl_s=cfg.lock_ttl_s, poll_s=min(cfg.poll_interval_s, 10.0),
                            wait_timeout_s=cfg.build_wait_timeout_s)  # fmt: skip
        engine_dir = work / "engine" / self.platform
        status = obtain_engine(self.store, version, self.platform, self.builder, source, engine_dir, policy,
                               sleep=self.sleep)  # fmt: skip
        if status.outcome is EngineOutcome.NO_BUILDER:
            return SyncResult(SyncOutcome.NO_BUILDER, status.message, version, status.outcome)
        if status.outcome is EngineOutcome.WAIT_TIMEOUT:
            return SyncResult(SyncOutcome.WAITING, status.message, version, status.outcome)
        assert status.manifest is not None and status.engine_path is not None
        staged = work / "deepstream"
        files = write_deepstream_config(model_dir, staged, status.manifest, batch_size=cfg.batch_size)
        state = InstalledSet(
            model_version=version, platform=self.platform, engine_sha256=status.manifest.engine_sha256,
            precision=str(status.manifest.precision), installed_at=time.time(),
            files=(ENGINE_FILE, LABELS_FILE, NVINFER_CONFIG_FILE, files.model_file.name),
        )  # fmt: skip
        installed = install_set(
            cfg.deepstream_dir,
            {ENGINE_FILE: status.engine_path, LABELS_FILE: files.labels, NVINFER_CONFIG_FILE: files.config,
             files.model_file.name: files.model_file},
            state,
        )  # fmt: skip
        if status.built and self.notifier is not None:
            self.notifier.publish(EngineBuilt(
                model_version=version, platform=self.platform,
                engine_key=engine_key(version, self.platform),
                precision=str(status.manifest.precision),
            ))  # fmt: skip
        rc = self.run_post_install(installed)
        message = f"installed {version} ({status.message})"
        if rc not in (None, 0):
            message += f"; post-install command exited {rc}"
        return SyncResult(SyncOutcome.INSTALLED, message, version, status.outcome, installed, rc)

    def run_post_install(self, installed: InstalledSet) -> int | None:
        command = self.config.post_install
        if not command:
            return None
        env = {
            **os.environ,
            **self.config.extra_env,
            "PEOPLENET_MODEL_VERSION": installed.model_version,
            "PEOPLENET_PLATFORM": installed.platform,
            "PEOPLENET_DEEPSTREAM_DIR": str(self.config.deepstream_dir),
        }
        try:
            result = subprocess.run(shlex.split(command), env=env, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("post-install command %r failed: %s", command, exc)
            return -1
        if result.returncode != 0:
            log.error("post-install command %r exited %d", command, result.returncode)
        return result.returncode

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> SyncResult:
        """Sync now, then after every event or poll interval until stopped; returns the last result."""
        stop = stop or threading.Event()
        while True:
            result = self.sync_once()
            log.info("sync: %s: %s", result.outcome, result.message)
            if once or stop.is_set():
                return result
            self.watcher.wait(self.config.poll_interval_s, stop)
            if stop.is_set():
                return result
