"""What one TAO container run is: the task, its arguments, and the host folders it sees.

Host folders are bind-mounted under `/workspace/tao-experiments` (NVIDIA's convention); every path
handed to TAO (arguments and spec files) is translated through the same `MountPlan`, so a path that
the container could not see is an error here rather than a confusing TAO failure later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

WORKSPACE = PurePosixPath("/workspace/tao-experiments")
KEY_MASK = "****"


class ImageKind(StrEnum):
    TRAIN = "train"  # TAO TF1 container: detectnet_v2 training tasks
    DEPLOY = "deploy"  # TAO Deploy container: gen_trt_engine
    CONVERTER = "converter"  # image with tao-converter (for .etlt models)


class TaoTask(StrEnum):
    DATASET_CONVERT = "dataset_convert"
    TRAIN = "train"  # retrain is `train` with the pruned model in the spec
    EVALUATE = "evaluate"
    PRUNE = "prune"
    EXPORT = "export"
    CALIBRATION_TENSORFILE = "calibration_tensorfile"
    GEN_TRT_ENGINE = "gen_trt_engine"
    TAO_CONVERTER = "tao-converter"

    @property
    def image_kind(self) -> ImageKind:
        if self is TaoTask.GEN_TRT_ENGINE:
            return ImageKind.DEPLOY
        if self is TaoTask.TAO_CONVERTER:
            return ImageKind.CONVERTER
        return ImageKind.TRAIN

    @property
    def argv_prefix(self) -> tuple[str, ...]:
        if self is TaoTask.TAO_CONVERTER:
            return ("tao-converter",)
        return ("detectnet_v2", self.value)

    @property
    def takes_key(self) -> bool:
        """dataset_convert and calibration_tensorfile read no model, and their parsers reject `-k`."""
        return self not in (TaoTask.DATASET_CONVERT, TaoTask.CALIBRATION_TENSORFILE)

    @property
    def takes_gpu_flags(self) -> bool:
        """`--gpus/--gpu_index` belong to TAO's detectnet_v2 entry point, not to tao-converter."""
        return self.image_kind is ImageKind.TRAIN


@dataclass(frozen=True)
class Mount:
    host: Path
    container: PurePosixPath
    read_only: bool = False


class MountPlan:
    """Host folder -> container folder; translates paths by the most specific mount."""

    def __init__(self, mounts: Iterable[Mount] = ()) -> None:
        self._mounts: list[Mount] = []
        for mount in mounts:
            self.add(mount.host, mount.container, read_only=mount.read_only)

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return tuple(self._mounts)

    def add(self, host: Path, container: PurePosixPath | str, *, read_only: bool = False) -> None:
        host = host.resolve()
        target = PurePosixPath(container)
        if not target.is_absolute():
            raise ValueError(f"container path {target} must be absolute")
        for existing in self._mounts:
            if existing.container == target:
                if existing.host == host:
                    return
                raise ValueError(f"{target} is already mounted from {existing.host}")
        self._mounts.append(Mount(host=host, container=target, read_only=read_only))

    def container_path(self, host: Path) -> str:
        resolved = host.resolve()
        best: Mount | None = None
        for mount in self._mounts:
            if resolved.is_relative_to(mount.host) and (best is None or len(mount.host.parts) > len(best.host.parts)):
                best = mount
        if best is None:
            raise ValueError(f"{host} is not inside any folder mounted into the TAO container")
        relative = resolved.relative_to(best.host)
        return str(best.container.joinpath(*relative.parts)) if relative.parts else str(best.container)

    def docker_volumes(self) -> dict[str, dict[str, str]]:
        """The `volumes=` argument of the Docker SDK."""
        return {str(m.host): {"bind": str(m.container), "mode": "ro" if m.read_only else "rw"} for m in self._mounts}


@dataclass(frozen=True)
class TaoInvocation:
    """One container run. The key is not part of it: the runner adds `-k` from configuration."""

    task: TaoTask
    args: tuple[str, ...]
    mounts: MountPlan
    workdir: str = str(WORKSPACE)
    env: dict[str, str] = field(default_factory=dict)


def container_argv(invocation: TaoInvocation, key: str | None, visible_gpus: int | None) -> list[str]:
    """`detectnet_v2 <task> [-k KEY] ARGS [--gpus N --gpu_index 0 .. N-1]`.

    The key goes right after the task so that positional arguments (tao-converter's model file) stay
    last. `visible_gpus` is how many GPUs the container was given (they are renumbered from 0 inside
    it); None means no GPUs were requested and no GPU flags are passed. TAO's entry point runs only
    `train` on several GPUs (horovod), every other task on one.
    """
    argv = list(invocation.task.argv_prefix)
    if invocation.task.takes_key and key:
        argv += ["-k", key]
    argv += invocation.args
    if invocation.task.takes_gpu_flags and visible_gpus:
        count = visible_gpus if invocation.task is TaoTask.TRAIN else 1
        argv += ["--gpus", str(count), "--gpu_index", *(str(i) for i in range(count))]
    return argv


def display_argv(argv: Sequence[str], secrets: Sequence[str]) -> str:
    """The command line for logs, with secrets masked."""
    return SecretMasker(secrets).mask(" ".join(argv))


class SecretMasker:
    """Replaces every occurrence of the given secrets (longest first) with `****`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, KEY_MASK)
        return text
