"""Where TAO containers run: the Docker client, the image per task kind, the GPUs they get."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gpu_worker.config import TaoSettings
from gpu_worker.tao.command import ImageKind
from gpu_worker.tao.errors import DockerUnavailable

if TYPE_CHECKING:
    from docker import DockerClient


def docker_client() -> DockerClient:
    """A client from the environment (DOCKER_HOST etc.), or `DockerUnavailable` saying what to do."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            "cannot reach the Docker engine "
            f"({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): {exc}. "
            "Start it (`sudo systemctl start docker`), make sure this user may use it (group `docker`), "
            "or set DOCKER_HOST."
        ) from exc
    return client


def image_for(settings: TaoSettings, kind: ImageKind) -> tuple[str, str]:
    """(image, the setting that names it)."""
    if kind is ImageKind.TRAIN:
        return settings.train_image, "PEOPLENET_TAO__TRAIN_IMAGE"
    if kind is ImageKind.DEPLOY:
        return settings.deploy_image, "PEOPLENET_TAO__DEPLOY_IMAGE"
    if settings.converter_image:
        return settings.converter_image, "PEOPLENET_TAO__CONVERTER_IMAGE"
    return settings.deploy_image, "PEOPLENET_TAO__CONVERTER_IMAGE (unset: the deploy image)"


def visible_gpu_count(settings: TaoSettings) -> int | None:
    """GPUs the container gets: the chosen ids, or every GPU NVML sees (1 when NVML is absent)."""
    if not settings.use_gpus:
        return None
    if settings.gpu_ids:
        return len(settings.gpu_ids)
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return max(1, int(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver here: the engine side decides; TAO's default is one GPU
        return 1
