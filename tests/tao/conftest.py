"""A real Docker engine for the TAO tests, and stand-in TAO images built offline.

The engine is Debian's dockerd started as TESTING.md shows (root; data and exec roots in a temp
folder, its own socket, no iptables, no bridge), stopped by its pid file at the end. When dockerd
is not installed or cannot start, every test using it skips with that reason.

Stand-in images: a busybox rootfs imported with `docker import`, then `images.build(pull=False)`
FROM it adding the stand-in entry points of tests/tao/standins (TAO's command-line contract).
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gpu_worker.config import TaoSettings

STANDINS = Path(__file__).parent / "standins"
REPO_ROOT = Path(__file__).resolve().parents[2]
TAO_KEY = "nvapi-Zq8-TEST-KEY-7f3c91"  # must never show up in any log line or error message
BASE_IMAGE = "peoplenet-test/busybox:1"
TRAIN_IMAGE = "peoplenet-test/tao-train:standin"
DEPLOY_IMAGE = "peoplenet-test/tao-deploy:standin"


@dataclass
class DockerEngine:
    host: str
    client: Any  # docker.DockerClient


@dataclass(frozen=True)
class StandinImages:
    train: str
    deploy: str


def _start_dockerd(root: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    sock = root / "docker.sock"
    log = root / "dockerd.log"
    last_error = ""
    for driver in ("overlay2", "vfs"):
        (root / "data").mkdir(exist_ok=True)
        (root / "exec").mkdir(exist_ok=True)
        cmd = [
            "dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "-H", f"unix://{sock}", "--pidfile", str(root / "dockerd.pid"), f"--storage-driver={driver}",
            "--iptables=false", "--bridge=none",
        ]  # fmt: skip
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if sock.exists() and _answers(f"unix://{sock}"):
                return proc, f"unix://{sock}", driver
            time.sleep(0.2)
        _stop_dockerd(proc, root)
        last_error = log.read_text(errors="replace")[-1500:]
    raise RuntimeError(f"dockerd did not start: {last_error}")


def _answers(host: str) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=host, timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def _stop_dockerd(proc: subprocess.Popen[bytes], root: Path) -> None:
    pid_file = root / "dockerd.pid"
    pid = int(pid_file.read_text().strip()) if pid_file.is_file() else proc.pid
    try:
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("starting a Docker engine for tests needs root")
    import docker

    root = Path(tempfile.mkdtemp(prefix="pnr-dk-", dir="/tmp"))  # short: unix socket paths are limited
    try:
        proc, host, _driver = _start_dockerd(root)
    except (RuntimeError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the Docker engine cannot start here: {exc}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host  # for code that uses docker.from_env() (CLI, default runner)
    client = docker.DockerClient(base_url=host, timeout=60)
    try:
        yield DockerEngine(host=host, client=client)
    finally:
        client.close()
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        _stop_dockerd(proc, root)
        shutil.rmtree(root, ignore_errors=True)


def _busybox_rootfs_tar() -> bytes:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (apt-get install busybox-static)")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp", "opt", "workspace", "dev/shm"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
    return buffer.getvalue()


def _build_context(files: dict[str, Path], dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for arcname, path in files.items():
            tar.add(path, arcname=arcname)
    buffer.seek(0)
    return buffer


def _standin_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the stand-in `export` writes: a real DetectNet_v2 ONNX (ResNet-10, random weights) at the demo
    spec's 320x192 with classes person, bag, face, so the pipeline's later stages run on it for real."""
    import torch

    from gpu_worker.detection.channel_plan import ChannelPlan
    from gpu_worker.detection.model import DetectNetV2
    from gpu_worker.export.onnx_export import export_model

    torch.manual_seed(0)
    model = DetectNetV2(ChannelPlan.standard(10, 3)).eval()
    out = tmp_path_factory.mktemp("standin-onnx") / "model.onnx"
    return export_model(model, out, ("person", "bag", "face"), (192, 320))


@pytest.fixture(scope="session")
def tao_images(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> StandinImages:
    api = docker_engine.client.api
    repository, tag = BASE_IMAGE.rsplit(":", 1)
    api.import_image_from_data(_busybox_rootfs_tar(), repository=repository, tag=tag, changes=["ENV PATH=/bin"])
    common = {"common.sh": STANDINS / "common.sh"}
    builds = {
        TRAIN_IMAGE: (
            {**common, "detectnet_v2": STANDINS / "detectnet_v2", "model.onnx": _standin_onnx(tmp_path_factory)},
            "COPY detectnet_v2 /bin/detectnet_v2\nCOPY model.onnx /opt/standin/model.onnx\nENV STANDIN_ROLE=train\n",
        ),
        DEPLOY_IMAGE: (
            {**common, "detectnet_v2": STANDINS / "detectnet_v2_deploy", "tao-converter": STANDINS / "tao-converter"},
            "COPY detectnet_v2 /bin/detectnet_v2\nCOPY tao-converter /bin/tao-converter\nENV STANDIN_ROLE=deploy\n",
        ),
    }
    for image, (files, steps) in builds.items():
        dockerfile = f"FROM {BASE_IMAGE}\nCOPY common.sh /opt/standin/common.sh\n{steps}WORKDIR /workspace\n"
        docker_engine.client.images.build(
            fileobj=_build_context(files, dockerfile), custom_context=True, tag=image, pull=False, rm=True
        )
    return StandinImages(train=TRAIN_IMAGE, deploy=DEPLOY_IMAGE)


def memlock_limit() -> int:
    """The largest memlock a container may get here (-1 where unlimited, as NVIDIA's launcher asks)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return -1 if hard == resource.RLIM_INFINITY else int(hard)


@pytest.fixture
def tao_key() -> str:
    return TAO_KEY


@pytest.fixture
def tao_settings(tao_images: StandinImages) -> TaoSettings:
    return TaoSettings(
        key=SecretStr(TAO_KEY),
        train_image=tao_images.train,
        deploy_image=tao_images.deploy,
        use_gpus=False,
        shm_size="64m",
        ulimits={"memlock": memlock_limit(), "stack": 67108864},
        network_mode="none",  # the test engine runs with --bridge=none
        stop_grace_s=1.0,
        timeout_s=120,
    )


@pytest.fixture
def kitti_dataset(tmp_path: Path) -> Path:
    """A tiny KITTI folder (the stand-ins never decode the images)."""
    root = tmp_path / "dataset"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(4):
        (root / "images" / f"{i:06d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not decoded by stand-ins")
        (root / "labels" / f"{i:06d}.txt").write_text("person 0.00 0 0.00 10.0 20.0 60.0 140.0 0 0 0 0 0 0 0\n")
    return root


@pytest.fixture
def experiment_spec(tmp_path: Path) -> Path:
    """The shipped demo spec with 3 epochs."""
    from gpu_worker.specs.loader import load_experiment_spec, spec_to_text

    spec = load_experiment_spec(REPO_ROOT / "specs" / "demo_cpu.txt", resolve_paths=False)
    spec.training_config.num_epochs = 3
    path = tmp_path / "specs" / "experiment.txt"
    path.parent.mkdir(parents=True)
    path.write_text(spec_to_text(spec))
    return path
