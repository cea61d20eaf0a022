"""One interface for every engine builder; the base class owns checks, the manifest and engine.json.

Builders implement `_build` (make the engine file) and `supports` (which model formats). The base
resolves names and dims from the ONNX, refuses requests the model cannot satisfy, checks that the
tool really wrote an engine, and writes `engine.json` (EngineManifest) last.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from gpu_worker.engines.exceptions import BuildRequestError, EngineBuildError, ModelFormatError
from gpu_worker.engines.onnx_io import read_signature
from gpu_worker.engines.platform import PlatformFacts, major_minor
from gpu_worker.files import sha256_file
from peoplenet_contracts import EngineManifest, Precision

ENGINE_FILE = "peoplenet.engine"
ENGINE_MANIFEST_FILE = "engine.json"
# TAO's UFF-era .etlt names (no ':0'); ONNX exported by TAO 5 carries the ':0' suffix.
ETLT_INPUT_NAME = "input_1"
ETLT_OUTPUT_NAMES = ("output_cov/Sigmoid", "output_bbox/BiasAdd")


class HardwareCompatibility(StrEnum):
    AMPERE_PLUS = "ampere+"  # runs on any GPU from Ampere on (sm80+); built on Ampere or later


class Int8Mode(StrEnum):
    NONE = "none"
    QDQ = "qdq"  # explicit quantisation from Q/DQ nodes in the ONNX
    CALIBRATION_CACHE = "calibration-cache"  # implicit: a legacy calibration cache


@dataclass(frozen=True)
class BuildRequest:
    model_version: str
    precision: Precision = Precision.FP16
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    workspace_mib: int = 2048
    calibration_cache: Path | None = None
    hardware_compatibility: HardwareCompatibility | None = None
    timing_cache: Path | None = None  # loaded if present, saved after the build
    input_name: str | None = None  # default: the ONNX's input (etlt: input_1)
    input_dims: tuple[int, int, int] | None = None  # C, H, W; default: the ONNX's (required for etlt)
    output_names: tuple[str, ...] | None = None  # default: the ONNX's outputs (etlt: TAO's names)
    etlt_key: str = "tlt_encode"
    experiment_spec: Path | None = None  # TAO Deploy's gen_trt_engine reads the spec (-e)
    timeout_s: float = 4 * 3600

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise BuildRequestError(
                "batch range must satisfy 1 <= min <= opt <= max, "
                f"got {self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if self.workspace_mib < 1:
            raise BuildRequestError(f"workspace_mib must be >= 1, got {self.workspace_mib}")


@dataclass(frozen=True)
class ResolvedBuild:
    """A request with every name and dim filled in from the model: what the tools are given."""

    request: BuildRequest
    source: Path
    input_name: str
    input_dims: tuple[int, int, int]
    output_names: tuple[str, ...]
    int8_mode: Int8Mode
    source_sha256: str

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, *self.input_dims)


@dataclass(frozen=True)
class BuildOutput:
    """What a tool reported about its own build (it may know its TensorRT better than the host probe)."""

    tensorrt_version: str | None = None
    log_tail: tuple[str, ...] = field(default_factory=tuple)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old file or the new one."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


class EngineBuilder(ABC):
    """Builds `peoplenet.engine` + `engine.json` into out_dir for this host's platform."""

    name: ClassVar[str]

    def __init__(self, facts: PlatformFacts) -> None:
        self.facts = facts

    @abstractmethod
    def supports(self, source: Path) -> bool:
        """Whether this builder can read the model file (by format)."""

    @abstractmethod
    def _build(self, build: ResolvedBuild, engine_path: Path) -> BuildOutput:
        """Write the engine to engine_path; raise EngineBuildError when the tool fails."""

    def build(self, source: Path, out_dir: Path, request: BuildRequest) -> EngineManifest:
        platform = self.facts.require_platform_key()
        if not self.supports(source):
            raise BuildRequestError(f"{self.name} cannot build from {source.name} (unsupported model format)")
        resolved = self.resolve(source, request)
        out_dir.mkdir(parents=True, exist_ok=True)
        engine_path = out_dir / ENGINE_FILE
        partial = out_dir / f".{ENGINE_FILE}.partial"
        partial.unlink(missing_ok=True)
        try:
            output = self._build(resolved, partial)
            if not partial.is_file() or partial.stat().st_size == 0:
                tail = "\n".join(output.log_tail[-20:])
                raise EngineBuildError(f"{self.name} finished but wrote no engine to {partial}\n{tail}".rstrip())
            trt_version = output.tensorrt_version or self.facts.tensorrt_version
            if trt_version is None or major_minor(trt_version) != self.facts.tensorrt_major_minor:
                raise EngineBuildError(
                    f"{self.name} used TensorRT {trt_version}, but this host's platform {platform} needs "
                    f"TensorRT {self.facts.tensorrt_major_minor}: the engine would not load here"
                )
            os.replace(partial, engine_path)
        finally:
            partial.unlink(missing_ok=True)
        manifest = EngineManifest(
            platform=platform,
            model_version=request.model_version,
            builder=self.name,
            tensorrt_version=trt_version,
            cuda_version=self.facts.cuda_version,
            gpu_name=self.facts.gpu_name,
            compute_capability=self.facts.compute_capability or "",
            precision=request.precision,
            input_name=resolved.input_name,
            input_dims=resolved.input_dims,
            min_batch=request.min_batch,
            opt_batch=request.opt_batch,
            max_batch=request.max_batch,
            output_names=list(resolved.output_names),
            hardware_compatibility=str(request.hardware_compatibility) if request.hardware_compatibility else None,
            source_model_sha256=resolved.source_sha256,
            engine_sha256=sha256_file(engine_path),
        )
        write_atomic(out_dir / ENGINE_MANIFEST_FILE, manifest.to_json().encode())
        return manifest

    def resolve(self, source: Path, request: BuildRequest) -> ResolvedBuild:
        """Fill names and dims from the model and refuse what it cannot give."""
        if not source.is_file():
            raise BuildRequestError(f"model file {source} does not exist")
        cache = request.calibration_cache
        if cache is not None and not cache.is_file():
            raise BuildRequestError(f"calibration cache {cache} does not exist")
        if source.suffix == ".etlt":
            if request.input_dims is None:
                raise BuildRequestError(f"{source.name}: an .etlt model needs input_dims (C, H, W) in the request")
            int8 = self._int8_mode(request, has_qdq=False, source=source)
            return ResolvedBuild(
                request=request,
                source=source,
                input_name=request.input_name or ETLT_INPUT_NAME,
                input_dims=request.input_dims,
                output_names=request.output_names or ETLT_OUTPUT_NAMES,
                int8_mode=int8,
                source_sha256=sha256_file(source),
            )
        signature = read_signature(source)
        dims = signature.input_chw()
        if request.input_dims is not None and tuple(request.input_dims) != dims:
            raise BuildRequestError(f"{source.name} takes input {dims} (C, H, W), not {request.input_dims}")
        input_name = signature.input.name
        if request.input_name is not None and request.input_name != input_name:
            raise BuildRequestError(f"{source.name} names its input {input_name!r}, not {request.input_name!r}")
        outputs = tuple(t.name for t in signature.outputs)
        signature.output("cov"), signature.output("bbox")  # DetectNet_v2 heads must be there
        if request.output_names is not None and set(request.output_names) - set(outputs):
            raise ModelFormatError(f"{source.name} has outputs {list(outputs)}, not {list(request.output_names)}")
        return ResolvedBuild(
            request=request,
            source=source,
            input_name=input_name,
            input_dims=dims,
            output_names=outputs,
            int8_mode=self._int8_mode(request, has_qdq=signature.has_qdq, source=source),
            source_sha256=sha256_file(source),
        )

    @staticmethod
    def _int8_mode(request: BuildRequest, *, has_qdq: bool, source: Path) -> Int8Mode:
        if request.precision is not Precision.INT8:
            if has_qdq:
                raise BuildRequestError(
                    f"{source.name} is quantised (Q/DQ nodes): TensorRT builds it only as int8, not {request.precision}"
                )
            return Int8Mode.NONE
        if has_qdq:
            return Int8Mode.QDQ
        if request.calibration_cache is not None:
            return Int8Mode.CALIBRATION_CACHE
        raise BuildRequestError(
            f"int8 from {source.name} needs Q/DQ nodes (model_int8.onnx) or a calibration cache; "
            "give one, or build fp16"
        )
