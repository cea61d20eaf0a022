"""Engine builder on the TensorRT Python API (8.6 and 10.x), imported only when a build runs.

ONNX parser into an explicit-batch network, one optimisation profile (min/opt/max batch) on the
image input, workspace limit through `set_memory_pool_limit`, fp16/int8 flags; int8 comes from the
model's Q/DQ nodes or from a legacy calibration cache served by a calibrator that never calibrates.
Optional hardware compatibility (Ampere+) and a timing cache that is loaded and saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpu_worker.engines.base import (
    BuildOutput,
    EngineBuilder,
    HardwareCompatibility,
    Int8Mode,
    ResolvedBuild,
    write_atomic,
)
from gpu_worker.engines.exceptions import BuildRequestError, EngineBuildError
from peoplenet_contracts import Precision

# The cache's first line names the algorithm that wrote it; TensorRT ignores a cache whose
# algorithm differs from the calibrator's, and would then try to calibrate with no data.
_CALIBRATORS = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
    "LegacyCalibration": "IInt8LegacyCalibrator",
}


def calibration_algorithm(cache: bytes) -> str:
    """'TRT-8502-EntropyCalibration2' -> 'EntropyCalibration2'."""
    header = cache.split(b"\n", 1)[0].decode("ascii", errors="replace").strip()
    algorithm = header.rsplit("-", 1)[-1]
    if not header.startswith("TRT-") or algorithm not in _CALIBRATORS:
        raise BuildRequestError(f"not a TensorRT calibration cache (first line {header!r})")
    return algorithm


def cache_calibrator(trt: Any, cache: bytes) -> Any:
    """A calibrator that only replays a cache: get_batch returns None, so it never calibrates."""
    base = getattr(trt, _CALIBRATORS[calibration_algorithm(cache)])

    class CacheCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._cache = cache

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return self._cache

        def write_calibration_cache(self, cache: bytes) -> None:
            return None

    return CacheCalibrator()


class TensorRTBuilder(EngineBuilder):
    name = "tensorrt-python"

    def supports(self, source: Path) -> bool:
        return source.suffix == ".onnx"

    def _build(self, build: ResolvedBuild, engine_path: Path) -> BuildOutput:
        import tensorrt as trt

        request = build.request
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        major = int(str(trt.__version__).split(".")[0])
        # TensorRT 10 networks are always explicit-batch; the flag is deprecated there.
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(build.source)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EngineBuildError(f"TensorRT could not parse {build.source.name}: " + "; ".join(errors))
        produced = {network.get_output(i).name for i in range(network.num_outputs)}
        if set(build.output_names) - produced:
            raise EngineBuildError(f"network outputs {sorted(produced)} lack {list(build.output_names)}")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mib << 20)
        if request.precision in (Precision.FP16, Precision.INT8):
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape(
            build.input_name,
            build.shape(request.min_batch),
            build.shape(request.opt_batch),
            build.shape(request.max_batch),
        )
        config.add_optimization_profile(profile)
        if request.precision is Precision.INT8:
            config.set_flag(trt.BuilderFlag.INT8)
            if build.int8_mode is Int8Mode.CALIBRATION_CACHE:
                assert request.calibration_cache is not None  # resolve() checked it
                config.int8_calibrator = cache_calibrator(trt, request.calibration_cache.read_bytes())
                config.set_calibration_profile(profile)
        if request.hardware_compatibility is HardwareCompatibility.AMPERE_PLUS:
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        if request.timing_cache is not None:
            previous = request.timing_cache.read_bytes() if request.timing_cache.is_file() else b""
            config.set_timing_cache(config.create_timing_cache(previous), False)

        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError(f"TensorRT failed to build an engine from {build.source.name} (see its log)")
        write_atomic(engine_path, bytes(memoryview(serialized)))
        if request.timing_cache is not None:
            request.timing_cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(request.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
        return BuildOutput(tensorrt_version=str(trt.__version__))
