"""Errors of the TAO runner, each one message that says what happened and what to do.

Each is a `RetryableJobError` or `PermanentJobError` for the job queue; the ones a user fixes on the
host (Docker down, image not pulled, no GPU runtime) are also `UserError`, so the CLI prints them
without a traceback. Messages never contain the TAO key: they are built from masked log lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpu_worker.errors import PermanentJobError, RetryableJobError, UserError


def _tail(lines: Sequence[str], limit: int = 20) -> str:
    shown = list(lines)[-limit:]
    return "\n".join(f"  | {line}" for line in shown) if shown else "  | (no output)"


class DockerUnavailable(RetryableJobError, UserError):
    """The Docker engine cannot be reached (not installed, not running, or no permission)."""


class TaoImageMissing(PermanentJobError, UserError):
    """A TAO image is not on this host; the engine would try a registry pull and fail."""

    def __init__(self, image: str, setting: str) -> None:
        self.image = image
        super().__init__(
            f"TAO image {image} is not on this Docker host. Log in to NGC and pull it: "
            f"`docker login nvcr.io` (user: $oauthtoken, password: your NGC API key), then "
            f"`docker pull {image}`; or point {setting} at an image that is present."
        )


class GpuUnavailable(PermanentJobError, UserError):
    """The container could not get GPUs (no NVIDIA container toolkit / runtime, or bad GPU ids)."""


class TaoContainerError(PermanentJobError):
    """A TAO container ended badly; carries the task, exit code and the last (masked) log lines."""

    def __init__(self, message: str, *, task: str, exit_code: int | None, last_lines: Sequence[str]) -> None:
        self.task = task
        self.exit_code = exit_code
        self.last_lines = tuple(last_lines)
        super().__init__(f"{message}\nlast log lines of `{task}`:\n{_tail(last_lines)}")


class TaoTaskFailed(TaoContainerError):
    """The TAO task exited non-zero (spec, data or model problem)."""


class TaoOutOfMemory(TaoContainerError):
    """The container ran out of host or GPU memory."""


class TaoTimeout(TaoContainerError):
    """The task ran past the hard timeout and was killed."""


class TaoStopped(Exception):
    """The worker asked the task to stop; the container was stopped and removed."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(f"TAO task {task} stopped on request")


_OOM_MARKERS = ("out of memory", "resourceexhaustederror", "oom when allocating", "cuda_error_out_of_memory")


def raise_for_outcome(
    task: str, outcome: str, exit_code: int, *, oom_killed: bool, last_lines: Sequence[str], timeout_s: float
) -> None:
    """Map how a container ended ('exited' | 'timeout' | 'stopped') to the right error; return if it succeeded.

    Exit 137 that we did not cause (no stop, no timeout) is the kernel's OOM killer in practice,
    even when Docker's OOMKilled flag is unset (host OOM rather than the container's limit).
    """
    if outcome == "timeout":
        raise TaoTimeout(
            f"TAO `{task}` ran past its hard timeout of {timeout_s:g} s and was killed (PEOPLENET_TAO__TIMEOUT_S)",
            task=task, exit_code=exit_code, last_lines=last_lines,
        )  # fmt: skip
    if outcome == "stopped":
        raise TaoStopped(task)
    log_oom = exit_code != 0 and any(m in line.lower() for line in last_lines for m in _OOM_MARKERS)
    if oom_killed or exit_code == 137 or log_oom:
        why = "the container was OOM-killed" if oom_killed else f"exit code {exit_code}"
        raise TaoOutOfMemory(
            f"TAO `{task}` ran out of memory ({why}). Lower training_config.batch_size_per_gpu or the input "
            "resolution, free the GPU/host memory, or raise PEOPLENET_TAO__MEMORY_LIMIT / PEOPLENET_TAO__SHM_SIZE.",
            task=task, exit_code=exit_code, last_lines=last_lines,
        )  # fmt: skip
    if exit_code != 0:
        raise TaoTaskFailed(
            f"TAO `{task}` failed with exit code {exit_code}", task=task, exit_code=exit_code, last_lines=last_lines
        )
