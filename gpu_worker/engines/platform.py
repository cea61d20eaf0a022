"""What this host can build and run: GPU compute capability, TensorRT, CUDA, CPU arch, Jetson release.

An engine runs only on the compute capability and TensorRT version (major.minor) that built it, so
these facts name its platform: `sm87-trt8.5-aarch64`. Every probe goes through `Probes`, so tests
hand in the outputs of nvidia-smi, dpkg-query or /proc files instead of needing the hardware.
"""

from __future__ import annotations

import contextlib
import json
import platform as _platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpu_worker.engines.exceptions import PlatformUnavailable

TRTEXEC_DEFAULT_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec")
# Jetson SoCs have no NVML on older JetPacks; the device tree names the SoC, which fixes the GPU.
TEGRA_COMPUTE_CAPABILITY = {
    "tegra210": "5.3",  # Nano, TX1
    "tegra186": "6.2",  # TX2
    "tegra194": "7.2",  # Xavier NX / AGX Xavier
    "tegra234": "8.7",  # Orin family
}
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}
_TRT_DPKG_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7")
_NVINFER_VERSION_HEADERS = (
    "/usr/include/x86_64-linux-gnu/NvInferVersion.h",
    "/usr/include/aarch64-linux-gnu/NvInferVersion.h",
    "/usr/local/tensorrt/include/NvInferVersion.h",
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7"
    driver_version: str | None = None


@dataclass(frozen=True)
class PlatformFacts:
    """Everything engine building and selection needs to know about this host."""

    cpu_arch: str
    gpu_name: str | None = None
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    tensorrt_version: str | None = None  # full, e.g. "8.5.2.2"
    jetson_release: str | None = None  # L4T, e.g. "R35.3.1"
    tensorrt_python: bool = False  # `import tensorrt` works
    trtexec_path: str | None = None
    tao_converter_path: str | None = None
    docker_path: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # where each fact came from

    @property
    def tensorrt_major_minor(self) -> str | None:
        return major_minor(self.tensorrt_version) if self.tensorrt_version else None

    @property
    def platform_key(self) -> str | None:
        """`sm<cc>-trt<major.minor>-<arch>`, or None when the GPU or TensorRT is unknown."""
        if not self.compute_capability or not self.tensorrt_major_minor:
            return None
        return f"sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt_major_minor}-{self.cpu_arch}"

    def missing(self) -> list[str]:
        """Plain reasons why there is no platform key (empty when there is one)."""
        reasons = []
        if not self.compute_capability:
            reasons.append("no NVIDIA GPU found (NVML, nvidia-smi and the Jetson device tree report none)")
        if not self.tensorrt_version:
            reasons.append(
                "no TensorRT found (python `tensorrt`, dpkg packages libnvinfer*/tensorrt, NvInferVersion.h, trtexec)"
            )
        return reasons

    def require_platform_key(self) -> str:
        key = self.platform_key
        if key is None:
            raise PlatformUnavailable(
                "this host has no engine platform: "
                + "; ".join(self.missing())
                + ". TensorRT engines must be built on a host with an NVIDIA GPU and TensorRT (the DeepStream host)."
            )
        return key

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["platform_key"] = self.platform_key
        return data


def major_minor(version: str) -> str:
    match = re.match(r"^(\d+)\.(\d+)", version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return f"{int(match.group(1))}.{int(match.group(2))}"


def normalise_arch(machine: str) -> str:
    machine = machine.strip().lower()
    return _ARCH_ALIASES.get(machine, machine)


# Probes: each returns None when its source is absent or fails; the defaults touch the real host.


def _run(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _tensorrt_python_version() -> str | None:
    try:
        import tensorrt
    except Exception:  # a broken install raises more than ImportError; it still means "no TensorRT here"
        return None
    return str(getattr(tensorrt, "__version__", "")) or None


def _nvml_gpu(index: int) -> GpuInfo | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no usable GPU driver
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        return GpuInfo(
            name=name.decode() if isinstance(name, bytes) else str(name),
            compute_capability=f"{major}.{minor}",
            driver_version=driver.decode() if isinstance(driver, bytes) else str(driver),
        )
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _which(name: str) -> str | None:
    return shutil.which(name)


def _exists(path: str) -> bool:
    return Path(path).exists()


@dataclass(frozen=True)
class Probes:
    run: Callable[[list[str]], str | None] = _run
    read_text: Callable[[str], str | None] = _read_text
    which: Callable[[str], str | None] = _which
    exists: Callable[[str], bool] = _exists
    machine: Callable[[], str] = _platform.machine
    tensorrt_python_version: Callable[[], str | None] = _tensorrt_python_version
    nvml_gpu: Callable[[int], GpuInfo | None] = _nvml_gpu


def detect_platform(probes: Probes | None = None, gpu_index: int = 0) -> PlatformFacts:
    probes = probes or Probes()
    notes: list[str] = []
    jetson = parse_tegra_release(probes.read_text("/etc/nv_tegra_release"))
    gpu = probes.nvml_gpu(gpu_index)
    if gpu is not None:
        notes.append("gpu: NVML")
    else:
        gpu = parse_nvidia_smi_query(
            probes.run(
                [
                    "nvidia-smi",
                    "--query-gpu=compute_cap,name,driver_version",
                    "--format=csv,noheader",
                    f"-i={gpu_index}",
                ]
            )
        )
        if gpu is not None:
            notes.append("gpu: nvidia-smi")
    if gpu is None:
        gpu = parse_device_tree(
            probes.read_text("/proc/device-tree/compatible"), probes.read_text("/proc/device-tree/model")
        )
        if gpu is not None:
            notes.append("gpu: /proc/device-tree (Jetson)")

    trt_python = probes.tensorrt_python_version()
    trtexec = probes.which("trtexec") or next((p for p in TRTEXEC_DEFAULT_PATHS if probes.exists(p)), None)
    trt_version, trt_source = trt_python, "python tensorrt"
    if trt_version is None:
        trt_version, trt_source = _tensorrt_version_without_python(probes, trtexec)
    if trt_version is not None:
        notes.append(f"tensorrt: {trt_source}")
    cuda = _cuda_version(probes)
    return PlatformFacts(
        cpu_arch=normalise_arch(probes.machine()),
        gpu_name=gpu.name if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        driver_version=gpu.driver_version if gpu else None,
        cuda_version=cuda,
        tensorrt_version=trt_version,
        jetson_release=jetson,
        tensorrt_python=trt_python is not None,
        trtexec_path=trtexec,
        tao_converter_path=probes.which("tao-converter"),
        docker_path=probes.which("docker"),
        notes=tuple(notes),
    )


def _tensorrt_version_without_python(probes: Probes, trtexec: str | None) -> tuple[str | None, str]:
    for package in _TRT_DPKG_PACKAGES:
        version = parse_dpkg_version(probes.run(["dpkg-query", "-W", "-f=${Version}", package]))
        if version:
            return version, f"dpkg {package}"
    for header in _NVINFER_VERSION_HEADERS:
        version = parse_nvinfer_version_header(probes.read_text(header))
        if version:
            return version, header
    if trtexec:
        # trtexec prints its banner ("[TensorRT v8502]") even when it fails for want of arguments.
        output = probes.run([trtexec, "--help"])
        version = parse_trtexec_version(output or "")
        if version:
            return version, "trtexec banner"
    return None, ""


def _cuda_version(probes: Probes) -> str | None:
    data = probes.read_text("/usr/local/cuda/version.json")
    if data:
        try:
            return str(json.loads(data)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    text = probes.read_text("/usr/local/cuda/version.txt")
    if text and (match := re.search(r"CUDA Version\s+([\d.]+)", text)):
        return match.group(1)
    for nvcc in ("nvcc", "/usr/local/cuda/bin/nvcc"):
        output = probes.run([nvcc, "--version"])
        if output and (match := re.search(r"release\s+[\d.]+,\s*V([\d.]+)", output)):
            return match.group(1)
    output = probes.run(["nvidia-smi"])  # the driver's CUDA version, when no toolkit is installed
    if output and (match := re.search(r"CUDA Version:\s*([\d.]+)", output)):
        return match.group(1)
    return None


# Parsers: pure functions of a probe's text.


def parse_nvidia_smi_query(output: str | None) -> GpuInfo | None:
    """`9.0, NVIDIA H100 80GB HBM3, 550.54.15` (first line: the GPU asked for)."""
    if not output:
        return None
    line = output.strip().splitlines()[0] if output.strip() else ""
    parts = [part.strip() for part in line.split(",")]
    if len(parts) < 2 or not re.fullmatch(r"\d+\.\d+", parts[0]):
        return None
    return GpuInfo(name=parts[1], compute_capability=parts[0], driver_version=parts[2] if len(parts) > 2 else None)


def parse_device_tree(compatible: str | None, model: str | None) -> GpuInfo | None:
    """`/proc/device-tree/compatible` is NUL-separated, e.g. 'nvidia,p3737-0000+p3701-0000\\0nvidia,tegra234'."""
    if not compatible:
        return None
    for entry in compatible.replace("\x00", "\n").splitlines():
        soc = entry.strip().removeprefix("nvidia,")
        if soc in TEGRA_COMPUTE_CAPABILITY:
            name = (model or "").replace("\x00", "").strip() or f"Jetson ({soc})"
            return GpuInfo(name=name, compute_capability=TEGRA_COMPUTE_CAPABILITY[soc])
    return None


def parse_tegra_release(text: str | None) -> str | None:
    """'# R35 (release), REVISION: 3.1, GCID: ...' -> 'R35.3.1'."""
    if not text:
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{match.group(1)}.{match.group(2)}" if match else None


def parse_dpkg_version(output: str | None) -> str | None:
    """'8.5.2-1+cuda11.4' or '10.3.0.26-1+cuda12.5' -> the upstream version."""
    if not output:
        return None
    match = re.match(r"^\s*(?:\d+:)?(\d+\.\d+(?:\.\d+)*)", output)
    return match.group(1) if match else None


def parse_nvinfer_version_header(text: str | None) -> str | None:
    if not text:
        return None
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH", "BUILD"):
        match = re.search(rf"#define\s+NV_TENSORRT_{name}\s+(\d+)", text)
        if match is None:
            break
        parts.append(match.group(1))
    return ".".join(parts) if len(parts) >= 2 else None


def parse_trtexec_version(output: str) -> str | None:
    """'[TensorRT v8502]' -> '8.5.2'; TensorRT 10 prints six digits: 'v100300' -> '10.3.0'."""
    match = re.search(r"TensorRT v(\d{4}|\d{6})\]", output)
    if not match:
        return None
    digits = match.group(1)
    if len(digits) == 6:
        return f"{int(digits[:2])}.{int(digits[2:4])}.{int(digits[4:])}"
    return f"{int(digits[0])}.{int(digits[1])}.{int(digits[2:])}"
