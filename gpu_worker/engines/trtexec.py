"""Engine builder on the `trtexec` command line (TensorRT's own tool, present wherever TensorRT is)."""

from __future__ import annotations

from pathlib import Path

from gpu_worker.engines.base import BuildOutput, EngineBuilder, Int8Mode, ResolvedBuild
from gpu_worker.engines.exceptions import EngineBuildError
from gpu_worker.engines.platform import parse_trtexec_version
from gpu_worker.engines.process import run_tool
from peoplenet_contracts import Precision


def _version_tuple(version: str | None) -> tuple[int, int]:
    if not version:
        return (0, 0)
    major, _, rest = version.partition(".")
    return int(major), int(rest.partition(".")[0] or 0)


class TrtexecBuilder(EngineBuilder):
    name = "trtexec"

    def supports(self, source: Path) -> bool:
        return source.suffix == ".onnx"

    def argv(self, build: ResolvedBuild, engine_path: Path) -> list[str]:
        if not self.facts.trtexec_path:
            raise EngineBuildError("trtexec was not found on this host (PATH or /usr/src/tensorrt/bin)")
        request = build.request
        version = _version_tuple(self.facts.tensorrt_version)

        def shapes(batch: int) -> str:
            return f"{build.input_name}:" + "x".join(str(d) for d in build.shape(batch))

        argv = [
            self.facts.trtexec_path,
            f"--onnx={build.source}",
            f"--saveEngine={engine_path}",
            f"--minShapes={shapes(request.min_batch)}",
            f"--optShapes={shapes(request.opt_batch)}",
            f"--maxShapes={shapes(request.max_batch)}",
        ]
        if request.precision in (Precision.FP16, Precision.INT8):
            argv.append("--fp16")  # int8 engines keep fp16 for layers without int8 kernels
        if request.precision is Precision.INT8:
            argv.append("--int8")
            if build.int8_mode is Int8Mode.CALIBRATION_CACHE:
                argv.append(f"--calib={request.calibration_cache}")
        # --memPoolSize and --skipInference replaced --workspace and --buildOnly in TensorRT 8.4 / 8.6.
        argv.append(
            f"--memPoolSize=workspace:{request.workspace_mib}"
            if version >= (8, 4)
            else f"--workspace={request.workspace_mib}"
        )
        if request.hardware_compatibility is not None:
            argv.append(f"--hardwareCompatibilityLevel={request.hardware_compatibility}")
        if request.timing_cache is not None:
            argv.append(f"--timingCacheFile={request.timing_cache}")
        argv.append("--skipInference" if version >= (8, 6) else "--buildOnly")
        return argv

    def _build(self, build: ResolvedBuild, engine_path: Path) -> BuildOutput:
        if build.request.hardware_compatibility is not None and _version_tuple(self.facts.tensorrt_version) < (8, 6):
            raise EngineBuildError("hardware-compatible engines need TensorRT >= 8.6")
        tail = run_tool(self.argv(build, engine_path), timeout_s=build.request.timeout_s)
        return BuildOutput(tensorrt_version=parse_trtexec_version("\n".join(tail)), log_tail=tail)
