"""Platform detection from injected probe outputs, and the `platform` command on this GPU-less host."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpu_worker.engines.exceptions import PlatformUnavailable
from gpu_worker.engines.platform import (
    GpuInfo,
    Probes,
    detect_platform,
    parse_nvinfer_version_header,
    parse_trtexec_version,
)


def probes(commands: dict[str, str] | None = None, files: dict[str, str] | None = None, **overrides: object) -> Probes:
    commands, files = commands or {}, files or {}

    def run(argv: list[str]) -> str | None:
        for prefix, output in commands.items():
            if " ".join(argv).startswith(prefix):
                return output
        return None

    base: dict[str, object] = {
        "run": run,
        "read_text": files.get,
        "which": lambda name: None,
        "exists": lambda path: False,
        "machine": lambda: "x86_64",
        "tensorrt_python_version": lambda: None,
        "nvml_gpu": lambda index: None,
    }
    base.update(overrides)
    return Probes(**base)  # type: ignore[arg-type]


def test_dgpu_with_nvidia_smi_and_dpkg() -> None:
    facts = detect_platform(
        probes(
            {
                "nvidia-smi --query-gpu": "9.0, NVIDIA H100 80GB HBM3, 550.54.15\n",
                "dpkg-query -W -f=${Version} tensorrt": "10.3.0.26-1+cuda12.5",
            },
            {"/usr/local/cuda/version.json": '{"cuda": {"name": "CUDA SDK", "version": "12.5.1"}}'},
        )
    )
    assert facts.platform_key == "sm90-trt10.3-x86_64"
    assert (facts.gpu_name, facts.driver_version, facts.cuda_version) == (
        "NVIDIA H100 80GB HBM3",
        "550.54.15",
        "12.5.1",
    )


def test_jetson_orin_from_device_tree_and_l4t() -> None:
    facts = detect_platform(
        probes(
            {
                "dpkg-query -W -f=${Version} libnvinfer8": "8.5.2-1+cuda11.4",
                "nvcc --version": "release 11.4, V11.4.315",
            },
            {
                "/etc/nv_tegra_release": "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref",
                "/proc/device-tree/compatible": "nvidia,p3737-0000+p3701-0000\x00nvidia,tegra234\x00",
                "/proc/device-tree/model": "NVIDIA Jetson AGX Orin Developer Kit\x00",
            },
            machine=lambda: "arm64",
        )
    )
    assert facts.platform_key == "sm87-trt8.5-aarch64"
    assert facts.jetson_release == "R35.3.1"
    assert facts.gpu_name == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts.cuda_version == "11.4.315"


def test_nvml_and_python_tensorrt_win_over_fallbacks() -> None:
    facts = detect_platform(
        probes(
            {"nvidia-smi --query-gpu": "7.5, Tesla T4, 535.0"},
            nvml_gpu=lambda index: GpuInfo("NVIDIA A10G", "8.6", "550.1"),
            tensorrt_python_version=lambda: "8.6.1.post1",
        )
    )
    assert facts.platform_key == "sm86-trt8.6-x86_64"
    assert facts.tensorrt_python and "gpu: NVML" in facts.notes


def test_trtexec_banner_and_header_fallbacks() -> None:
    assert parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec") == "8.5.2"
    assert parse_trtexec_version("[TensorRT v100300]") == "10.3.0"
    assert parse_trtexec_version("no banner") is None
    header = "#define NV_TENSORRT_MAJOR 8 //!< major\n#define NV_TENSORRT_MINOR 6\n#define NV_TENSORRT_PATCH 1\n"
    assert parse_nvinfer_version_header(header) == "8.6.1"
    facts = detect_platform(
        probes(
            {
                "nvidia-smi --query-gpu": "8.9, NVIDIA L4, 550.0",
                "/usr/src/tensorrt/bin/trtexec --help": "[TensorRT v8601]",
            },
            exists=lambda path: path == "/usr/src/tensorrt/bin/trtexec",
        )
    )
    assert facts.trtexec_path == "/usr/src/tensorrt/bin/trtexec"
    assert facts.platform_key == "sm89-trt8.6-x86_64"


def test_gpu_without_tensorrt_has_no_platform() -> None:
    facts = detect_platform(probes({"nvidia-smi --query-gpu": "9.0, NVIDIA H100, 550.0"}))
    assert facts.compute_capability == "9.0" and facts.platform_key is None
    with pytest.raises(PlatformUnavailable, match="no TensorRT found"):
        facts.require_platform_key()


def test_platform_command_without_gpu_says_so_and_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpu_worker.cli", "platform"], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 0:
        pytest.skip(f"this host has an engine platform: {result.stdout.strip()}")
    assert result.returncode == 1
    assert "no NVIDIA GPU found" in result.stderr or "no TensorRT found" in result.stderr
    assert "Traceback" not in result.stderr
