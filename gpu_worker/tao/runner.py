"""Runs one TAO task in a container through the Docker SDK (imported lazily).

The shape of a run, as NVIDIA's launcher does it: the task's image (checked to be present first),
bind mounts, user UID:GID, shm size, ulimits, GPUs through a device request; then the runner streams
the output line by line (masked, parsed for progress), enforces the hard timeout, stops the
container when the worker asks, classifies the exit, and removes the container in every case.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpu_worker.config import TaoSettings
from gpu_worker.tao.command import ImageKind, SecretMasker, TaoInvocation, container_argv
from gpu_worker.tao.docker_env import docker_client, image_for, visible_gpu_count
from gpu_worker.tao.errors import DockerUnavailable, GpuUnavailable, TaoImageMissing, TaoTaskFailed, raise_for_outcome
from gpu_worker.tao.logparse import TaoLogParser, TaoProgress
from gpu_worker.tao.logstream import start_log_reader

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

log = logging.getLogger(__name__)

LineCallback = Callable[[str], None]
ProgressCallback = Callable[[TaoProgress], None]
_GPU_START_MARKERS = ("could not select device driver", "nvidia-container-cli", "unknown or invalid runtime name")
_POLL_S = 0.2


@dataclass(frozen=True)
class TaoRunResult:
    task: str
    image: str
    exit_code: int
    duration_s: float
    last_lines: tuple[str, ...]
    parser: TaoLogParser


class TaoRunner:
    def __init__(self, settings: TaoSettings, client: DockerClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self.masker = SecretMasker([settings.key.get_secret_value()])

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def ensure_image(self, kind: ImageKind) -> str:
        from docker.errors import DockerException, ImageNotFound

        image, setting = image_for(self.settings, kind)
        try:
            self.client.images.get(image)
        except ImageNotFound as exc:
            raise TaoImageMissing(image, setting) from exc
        except DockerException as exc:
            raise DockerUnavailable(f"cannot ask the Docker engine about image {image}: {exc}") from exc
        return image

    def run(
        self,
        invocation: TaoInvocation,
        *,
        on_line: LineCallback | None = None,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        timeout_s: float | None = None,
        parser: TaoLogParser | None = None,
    ) -> TaoRunResult:
        """Run the task to completion; raise a `TaoContainerError` subclass or `TaoStopped` otherwise."""
        from requests.exceptions import RequestException

        try:
            return self._run(invocation, on_line, on_progress, should_stop, timeout_s, parser or TaoLogParser())
        except RequestException as exc:  # the engine went away mid-run (restart, crash)
            raise DockerUnavailable(
                f"lost the Docker engine while running `{invocation.task}`: {self._explain(exc)}"
            ) from exc

    def _run(
        self,
        invocation: TaoInvocation,
        on_line: LineCallback | None,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool],
        timeout_s: float | None,
        parser: TaoLogParser,
    ) -> TaoRunResult:
        image = self.ensure_image(invocation.task.image_kind)
        gpus = visible_gpu_count(self.settings)
        key = self.settings.key.get_secret_value()
        argv = container_argv(invocation, key, gpus)
        log.info("TAO %s in %s: %s", invocation.task, image, self.masker.mask(" ".join(argv)))
        container = self._create(image, argv, invocation, gpus)
        tail: deque[str] = deque(maxlen=60)
        started = time.monotonic()
        try:
            self._start(container, invocation, tail)
            outcome = self._follow(
                container, invocation, tail, parser, on_line, on_progress, should_stop, timeout_s, started
            )
            return self._classify(container, invocation, image, outcome, tail, parser, started, timeout_s)
        finally:
            self._remove(container)

    # -- container lifecycle -------------------------------------------------------------------
    def _create(self, image: str, argv: list[str], invocation: TaoInvocation, gpus: int | None) -> Container:
        from docker.errors import APIError, DockerException
        from docker.types import DeviceRequest, LogConfig, Ulimit

        s = self.settings
        kwargs: dict[str, Any] = {
            "command": argv,
            "volumes": invocation.mounts.docker_volumes(),
            "working_dir": invocation.workdir,
            "user": s.user or f"{os.getuid()}:{os.getgid()}",
            "shm_size": s.shm_size,
            "ulimits": [Ulimit(name=name, soft=value, hard=value) for name, value in s.ulimits.items()],
            "environment": {**s.env, **invocation.env},
            "detach": True,
            "labels": {"peoplenet-retrain.task": str(invocation.task)},
            # Readable logs whatever the daemon's default driver (awslogs, none); bounded on disk.
            "log_config": LogConfig(type="json-file", config={"max-size": "50m", "max-file": "3"}),
        }
        if gpus:
            request = (
                DeviceRequest(device_ids=[str(i) for i in s.gpu_ids], capabilities=[["gpu"]])
                if s.gpu_ids
                else DeviceRequest(count=-1, capabilities=[["gpu"]])
            )
            kwargs["device_requests"] = [request]
        if s.memory_limit:
            kwargs["mem_limit"] = s.memory_limit
            kwargs["memswap_limit"] = s.memory_limit  # no swap: an over-limit task is OOM-killed, visibly
        if s.network_mode:
            kwargs["network_mode"] = s.network_mode
        try:
            return self.client.containers.create(image, **kwargs)
        except APIError as exc:
            raise TaoTaskFailed(
                f"Docker refused to create the container for `{invocation.task}`: {self._explain(exc)}",
                task=str(invocation.task),
                exit_code=None,
                last_lines=(),
            ) from exc
        except DockerException as exc:
            raise DockerUnavailable(f"Docker engine error creating `{invocation.task}`: {self._explain(exc)}") from exc

    def _start(self, container: Container, invocation: TaoInvocation, tail: deque[str]) -> None:
        from docker.errors import APIError

        try:
            container.start()
        except APIError as exc:
            reason = self._explain(exc)
            if any(marker in reason.lower() for marker in _GPU_START_MARKERS):
                ids = f"GPU ids {self.settings.gpu_ids}" if self.settings.gpu_ids else "all GPUs"
                raise GpuUnavailable(
                    f"the TAO container for `{invocation.task}` could not get {ids}: {reason}. Install the NVIDIA "
                    "driver and the NVIDIA container toolkit (`nvidia-ctk runtime configure --runtime=docker`, "
                    "then restart Docker), check PEOPLENET_TAO__GPU_IDS, or set PEOPLENET_TAO__USE_GPUS=false."
                ) from exc
            raise TaoTaskFailed(
                f"Docker could not start the container for `{invocation.task}`: {reason}",
                task=str(invocation.task),
                exit_code=None,
                last_lines=tuple(tail),
            ) from exc

    def _follow(
        self,
        container: Container,
        invocation: TaoInvocation,
        tail: deque[str],
        parser: TaoLogParser,
        on_line: LineCallback | None,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool],
        timeout_s: float | None,
        started: float,
    ) -> str:
        """Stream output until the container ends; returns 'exited', 'timeout' or 'stopped'."""
        limit = timeout_s if timeout_s is not None else float(self.settings.timeout_s)
        lines: queue.Queue[str | None] = queue.Queue()
        start_log_reader(container, lines, since_start=True)
        reattached = reader_done = False
        while True:
            try:
                raw = lines.get(timeout=_POLL_S)
            except queue.Empty:
                raw = ""
            if raw is None or (reader_done and not raw):
                if not self._still_running(container):
                    return "exited"
                if not reattached:  # the stream broke while the task runs: follow new output
                    log.warning("log stream of %s ended early; following new output only", container.short_id)
                    start_log_reader(container, lines, since_start=False)
                    reattached = True
                else:
                    reader_done = True  # no more output to follow: poll the container's state
            elif raw:
                self._emit(raw, tail, parser, on_line, on_progress)
            outcome = None
            if time.monotonic() - started > limit:
                outcome, grace = "timeout", min(self.settings.stop_grace_s, 10.0)
            elif should_stop():
                outcome, grace = "stopped", self.settings.stop_grace_s
            if outcome is not None:
                self._halt(container, grace=grace)
                if not reader_done:
                    self._drain(lines, tail, parser, on_line, on_progress)
                return outcome

    def _emit(
        self,
        raw: str,
        tail: deque[str],
        parser: TaoLogParser,
        on_line: LineCallback | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        progress = parser.feed(raw)  # parsed before masking; messages carry numbers only
        line = self.masker.mask(raw)
        tail.append(line)
        if on_line is not None:
            on_line(line)
        if progress is not None and on_progress is not None:
            on_progress(progress)

    def _drain(
        self,
        lines: queue.Queue[str | None],
        tail: deque[str],
        parser: TaoLogParser,
        on_line: LineCallback | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        """The last words of a stopped container (TAO saves and says so on interrupt)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                raw = lines.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if raw is None:
                return
            self._emit(raw, tail, parser, on_line, on_progress)

    @staticmethod
    def _still_running(container: Container) -> bool:
        from docker.errors import DockerException

        try:
            container.reload()
        except DockerException:
            return False
        return container.status in ("running", "restarting")

    def _halt(self, container: Container, grace: float) -> None:
        from docker.errors import APIError

        try:
            container.stop(timeout=int(grace))  # SIGTERM, then SIGKILL after the grace period
        except APIError as exc:
            log.warning("stopping container %s failed: %s", container.short_id, exc)
            with contextlib.suppress(APIError):
                container.kill()

    def _classify(
        self,
        container: Container,
        invocation: TaoInvocation,
        image: str,
        outcome: str,
        tail: deque[str],
        parser: TaoLogParser,
        started: float,
        timeout_s: float | None,
    ) -> TaoRunResult:
        limit = timeout_s if timeout_s is not None else float(self.settings.timeout_s)
        status = container.wait(timeout=max(30.0, self.settings.stop_grace_s + 30.0))
        exit_code = int(status.get("StatusCode", -1))
        container.reload()
        oom_killed = bool(container.attrs.get("State", {}).get("OOMKilled"))
        task = str(invocation.task)
        lines = tuple(tail)
        raise_for_outcome(task, outcome, exit_code, oom_killed=oom_killed, last_lines=lines, timeout_s=limit)
        return TaoRunResult(
            task=task,
            image=image,
            exit_code=exit_code,
            duration_s=time.monotonic() - started,
            last_lines=lines,
            parser=parser,
        )

    def _remove(self, container: Container) -> None:
        from docker.errors import NotFound

        try:
            container.remove(force=True)
        except NotFound:
            pass
        except Exception as exc:  # never hide the run's own outcome behind a cleanup failure
            log.warning("could not remove container %s: %s", container.short_id, exc)

    def _explain(self, exc: Exception) -> str:
        text = getattr(exc, "explanation", None) or str(exc)
        return self.masker.mask(text.decode() if isinstance(text, bytes) else str(text))
