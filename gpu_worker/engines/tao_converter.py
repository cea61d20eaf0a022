"""Engine builder on `tao-converter`, for encrypted `.etlt` models (TAO before 5.0; common on Jetson)."""

from __future__ import annotations

from pathlib import Path

from gpu_worker.engines.base import ETLT_OUTPUT_NAMES, BuildOutput, EngineBuilder, Int8Mode, ResolvedBuild
from gpu_worker.engines.exceptions import EngineBuildError
from gpu_worker.engines.process import run_tool
from peoplenet_contracts import Precision


class TaoConverterBuilder(EngineBuilder):
    name = "tao-converter"

    def supports(self, source: Path) -> bool:
        return source.suffix == ".etlt"

    def argv(self, build: ResolvedBuild, engine_path: Path) -> list[str]:
        if not self.facts.tao_converter_path:
            raise EngineBuildError("tao-converter was not found on PATH")
        request = build.request
        argv = [
            self.facts.tao_converter_path,
            "-k",
            request.etlt_key,
            "-d",
            ",".join(str(d) for d in build.input_dims),
            "-t",
            str(request.precision),
            "-m",
            str(request.max_batch),
            "-w",
            str(request.workspace_mib << 20),  # bytes
            "-e",
            str(engine_path),
        ]
        if build.int8_mode is Int8Mode.CALIBRATION_CACHE:
            argv += ["-c", str(request.calibration_cache)]
        if tuple(build.output_names) == ETLT_OUTPUT_NAMES:
            # UFF-based etlt (DetectNet_v2 before TAO 5): outputs must be named; batch is implicit.
            argv += ["-o", ",".join(build.output_names)]
        else:
            shapes = ",".join(
                "x".join(str(d) for d in build.shape(b))
                for b in (request.min_batch, request.opt_batch, request.max_batch)
            )
            argv += ["-p", f"{build.input_name},{shapes}"]
        argv.append(str(build.source))
        return argv

    def _build(self, build: ResolvedBuild, engine_path: Path) -> BuildOutput:
        if build.request.precision is Precision.INT8 and build.int8_mode is not Int8Mode.CALIBRATION_CACHE:
            raise EngineBuildError("tao-converter builds int8 only from a calibration cache (-c)")
        if build.request.hardware_compatibility is not None:
            raise EngineBuildError("tao-converter cannot build hardware-compatible engines; use trtexec or TensorRT")
        return BuildOutput(log_tail=run_tool(self.argv(build, engine_path), timeout_s=build.request.timeout_s))
