"""TensorRT engines through NVIDIA's containers: TAO Deploy `gen_trt_engine` and `tao-converter`.

For the engine builders (`gpu_worker.engines`) to call. An engine runs only on the GPU architecture
and TensorRT version that built it, so these run on the host that will use the engine (or one like
it). Model, output and calibration folders are bind-mounted under /workspace/tao-experiments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.config import Settings, TaoSettings
from gpu_worker.tao.command import WORKSPACE, MountPlan, TaoInvocation, TaoTask
from gpu_worker.tao.errors import TaoTaskFailed
from gpu_worker.tao.runner import TaoRunner, TaoRunResult

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TaoEngine:
    engine: Path
    calibration_cache: Path | None
    precision: str
    max_batch_size: int


def _tao(settings: Settings | TaoSettings) -> TaoSettings:
    return settings.tao if isinstance(settings, Settings) else settings


def _check_precision(precision: str) -> str:
    value = str(precision).lower()
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return value


def _run(
    runner: TaoRunner,
    invocation: TaoInvocation,
    on_line: Callable[[str], None] | None,
    should_stop: Callable[[], bool],
) -> TaoRunResult:
    return runner.run(invocation, on_line=on_line or (lambda line: log.info("%s", line)), should_stop=should_stop)


def gen_trt_engine(
    model: Path,
    out_dir: Path,
    settings: Settings | TaoSettings,
    *,
    spec: Path | None = None,
    precision: str = "fp16",
    batch_size: int = 1,
    max_batch_size: int = 1,
    batches: int = 10,
    cal_image_dir: Path | None = None,
    cal_cache: Path | None = None,
    engine_name: str = "peoplenet.engine",
    runner: TaoRunner | None = None,
    on_line: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TaoEngine:
    """`detectnet_v2 gen_trt_engine` in the TAO Deploy image, from an .onnx (TAO 5) or .etlt model.

    INT8 needs calibration: an existing cache (`cal_cache`) or images (`cal_image_dir`, `batches` x
    `batch_size` of them); the cache written lands next to the engine.
    """
    tao = _tao(settings)
    precision = _check_precision(precision)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = MountPlan()
    plan.add(out_dir, WORKSPACE / "engine")
    plan.add(model.resolve().parent, WORKSPACE / "model", read_only=True)
    if spec is not None:
        plan.add(spec.resolve().parent, WORKSPACE / "spec", read_only=True)
    if cal_image_dir is not None:
        plan.add(cal_image_dir, WORKSPACE / "calibration", read_only=True)
    engine = out_dir / engine_name
    engine.unlink(missing_ok=True)
    args = [
        "-m", plan.container_path(model),
        "-r", plan.container_path(out_dir),
        "--data_type", precision,
        "--engine_file", plan.container_path(engine),
        "--batch_size", str(batch_size),
        "--max_batch_size", str(max_batch_size),
    ]  # fmt: skip
    if spec is not None:
        args += ["-e", plan.container_path(spec)]
    cache_out: Path | None = None
    if precision == "int8":
        cache_out = out_dir / "calibration.cache"
        if cal_cache is not None and cal_cache.resolve() != cache_out.resolve():
            cache_out.write_bytes(cal_cache.read_bytes())  # TAO Deploy reuses an existing cache file
        elif cal_image_dir is None and cal_cache is None:
            raise ValueError("int8 needs cal_cache or cal_image_dir")
        args += ["--cal_cache_file", plan.container_path(cache_out), "--batches", str(batches)]
        if cal_image_dir is not None:
            args += ["--cal_image_dir", plan.container_path(cal_image_dir)]
    invocation = TaoInvocation(task=TaoTask.GEN_TRT_ENGINE, args=tuple(args), mounts=plan)
    result = _run(runner or TaoRunner(tao), invocation, on_line, should_stop)
    if not engine.is_file():
        raise TaoTaskFailed(
            f"gen_trt_engine wrote no {engine}", task=result.task, exit_code=0, last_lines=result.last_lines
        )
    cache = cache_out if cache_out is not None and cache_out.is_file() else None
    return TaoEngine(engine=engine, calibration_cache=cache, precision=precision, max_batch_size=max_batch_size)


def tao_converter(
    model: Path,
    engine: Path,
    settings: Settings | TaoSettings,
    *,
    input_dims: tuple[int, int, int] = (3, 544, 960),
    precision: str = "fp16",
    max_batch_size: int = 1,
    cal_cache: Path | None = None,
    output_nodes: tuple[str, ...] | None = None,
    runner: TaoRunner | None = None,
    on_line: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TaoEngine:
    """`tao-converter -k KEY -d C,H,W -t PRECISION -m MAX_BATCH [-c CACHE] [-o NODES] -e ENGINE MODEL.etlt`.

    The seed's path for `.etlt` models (and on Jetson). The key is the one the model was exported
    with (PEOPLENET_TAO__KEY; NGC's PeopleNet uses `tlt_encode`). `output_nodes` only for older
    UFF-based .etlt files (`output_cov/Sigmoid`, `output_bbox/BiasAdd`).
    """
    tao = _tao(settings)
    precision = _check_precision(precision)
    if precision == "int8" and cal_cache is None:
        raise ValueError("tao-converter int8 needs cal_cache (an INT8 calibration cache)")
    engine.parent.mkdir(parents=True, exist_ok=True)
    plan = MountPlan()
    plan.add(engine.parent, WORKSPACE / "engine")
    plan.add(model.resolve().parent, WORKSPACE / "model", read_only=True)
    if cal_cache is not None:
        plan.add(cal_cache.resolve().parent, WORKSPACE / "calibration", read_only=True)
    engine.unlink(missing_ok=True)
    args = ["-d", ",".join(str(d) for d in input_dims), "-t", precision, "-m", str(max_batch_size)]
    if cal_cache is not None:
        args += ["-c", plan.container_path(cal_cache)]
    if output_nodes:
        args += ["-o", ",".join(output_nodes)]
    args += ["-e", plan.container_path(engine), plan.container_path(model)]
    invocation = TaoInvocation(task=TaoTask.TAO_CONVERTER, args=tuple(args), mounts=plan)
    result = _run(runner or TaoRunner(tao), invocation, on_line, should_stop)
    if not engine.is_file():
        raise TaoTaskFailed(
            f"tao-converter wrote no {engine}", task=result.task, exit_code=0, last_lines=result.last_lines
        )
    return TaoEngine(engine=engine, calibration_cache=cal_cache, precision=precision, max_batch_size=max_batch_size)
