"""Is this host ready to run the TAO backend? Docker, NVIDIA runtime, images, key."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpu_worker.config import TaoSettings
from gpu_worker.tao.command import ImageKind
from gpu_worker.tao.docker_env import docker_client, image_for
from gpu_worker.tao.errors import DockerUnavailable

if TYPE_CHECKING:
    from docker import DockerClient


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _runtime_check(client: DockerClient, settings: TaoSettings) -> CheckResult:
    if not settings.use_gpus:
        return CheckResult("nvidia runtime", True, "GPUs disabled (PEOPLENET_TAO__USE_GPUS=false)")
    info = client.info()
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return CheckResult("nvidia runtime", True, f"runtimes: {', '.join(runtimes)}")
    # The container toolkit can also serve `--gpus` through its hook without a named runtime.
    hook = shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-container-cli")
    if hook:
        return CheckResult("nvidia runtime", True, f"no 'nvidia' runtime registered, but {hook} is installed")
    return CheckResult(
        "nvidia runtime",
        False,
        f"runtimes: {', '.join(runtimes) or 'none'}; install the NVIDIA container toolkit and run "
        "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`",
    )


def _image_check(client: DockerClient, settings: TaoSettings, kind: ImageKind) -> CheckResult:
    from docker.errors import ImageNotFound

    image, setting = image_for(settings, kind)
    try:
        found = client.images.get(image)
    except ImageNotFound:
        return CheckResult(
            f"{kind} image", False, f"{image} not pulled: `docker login nvcr.io` then `docker pull {image}` ({setting})"
        )
    size_gb = (found.attrs.get("Size") or 0) / 1e9
    return CheckResult(f"{kind} image", True, f"{image} ({found.short_id}, {size_gb:.1f} GB)")


def check_tao(settings: TaoSettings, client: DockerClient | None = None) -> list[CheckResult]:
    """One result per requirement; Docker unreachable makes the Docker-side checks fail too."""
    key = settings.key.get_secret_value()
    key_result = CheckResult(
        "key",
        bool(key),
        ("set" + (" (the default `tlt_encode`, NGC's key for PeopleNet)" if key == "tlt_encode" else ""))
        if key
        else "empty: set PEOPLENET_TAO__KEY",
    )
    try:
        docker = client or docker_client()
        version = docker.version().get("Version", "?")
    except DockerUnavailable as exc:
        return [CheckResult("docker", False, str(exc)), key_result]
    results = [CheckResult("docker", True, f"engine {version} reachable")]
    results.append(_runtime_check(docker, settings))
    kinds = [ImageKind.TRAIN, ImageKind.DEPLOY]
    if settings.converter_image:
        kinds.append(ImageKind.CONVERTER)
    results.extend(_image_check(docker, settings, kind) for kind in kinds)
    results.append(key_result)
    return results
