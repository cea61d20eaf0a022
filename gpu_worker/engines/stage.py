"""The pipeline's build_engine stage: an engine for the worker's own platform when it can build one.

Without TensorRT here (the usual GPU worker) the stage records why and the job still publishes the
ONNX: each DeepStream host's agent builds for its own platform. A build that fails is recorded the
same way rather than failing the job, since the published ONNX is what the fleet needs.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from gpu_worker.engines.base import BuildRequest, EngineBuilder
from gpu_worker.engines.distribution import EngineOutcome, EngineStatus, LockPolicy, obtain_engine
from gpu_worker.engines.exceptions import BuildRequestError, EngineBuildError
from gpu_worker.engines.layout import model_manifest_key, model_prefix
from gpu_worker.engines.lock import default_owner
from gpu_worker.engines.platform import PlatformFacts, detect_platform
from gpu_worker.engines.select import select_builder
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import ModelManifest, Precision

log = logging.getLogger(__name__)

MODEL_ONNX = "model.onnx"
MODEL_INT8_ONNX = "model_int8.onnx"  # Q/DQ (explicitly quantised)
MODEL_ETLT = "model.etlt"
CALIBRATION_CACHE = "calibration.cache"
EXPERIMENT_SPEC = "experiment_spec.txt"
NO_TENSORRT = "no TensorRT on this host: ONNX published, build on the target with the agent"


def choose_source(
    model_dir: Path,
    model_version: str,
    precision: Precision | None = None,
    input_dims: tuple[int, int, int] | None = None,
    **request_fields: object,
) -> tuple[Path, BuildRequest]:
    """The model file and request for a precision (None: int8 when a Q/DQ model exists, else fp16)."""
    qdq, onnx, etlt = model_dir / MODEL_INT8_ONNX, model_dir / MODEL_ONNX, model_dir / MODEL_ETLT
    cache = model_dir / CALIBRATION_CACHE
    spec = model_dir / EXPERIMENT_SPEC
    if precision is None:
        precision = Precision.INT8 if qdq.is_file() else Precision.FP16
    common: dict[str, object] = {
        "model_version": model_version,
        "precision": precision,
        "experiment_spec": spec if spec.is_file() else None,
        **request_fields,
    }
    if precision is Precision.INT8:
        if qdq.is_file():
            return qdq, BuildRequest(**common)  # type: ignore[arg-type]
        for model in (onnx, etlt):
            if model.is_file() and cache.is_file():
                return model, BuildRequest(calibration_cache=cache, input_dims=input_dims, **common)  # type: ignore[arg-type]
        raise BuildRequestError(
            f"{model_dir}: int8 needs {MODEL_INT8_ONNX} (Q/DQ) or a model with {CALIBRATION_CACHE}; build fp16 instead"
        )
    for model in (onnx, etlt):
        if model.is_file():
            return model, BuildRequest(input_dims=input_dims, **common)  # type: ignore[arg-type]
    raise BuildRequestError(f"{model_dir} holds no {MODEL_ONNX} or {MODEL_ETLT} to build an engine from")


def build_local_engine(
    source_dir: Path,
    out_dir: Path,
    model_version: str,
    *,
    facts: PlatformFacts | None = None,
    builder: EngineBuilder | None = None,
    precision: Precision | None = None,
) -> EngineStatus:
    """Build into out_dir/<platform>/ (peoplenet.engine + engine.json) from an exported model folder."""
    facts = facts or detect_platform()
    platform = facts.platform_key
    if platform is None:
        return EngineStatus(
            EngineOutcome.NO_BUILDER, model_version, None, f"{NO_TENSORRT} ({'; '.join(facts.missing())})"
        )
    try:
        source, request = choose_source(source_dir, model_version, precision)
        builder = builder or select_builder(facts, source.suffix)
        if builder is None:
            return EngineStatus(
                EngineOutcome.NO_BUILDER,
                model_version,
                platform,
                f"no engine builder for {source.suffix} on {platform}: "
                "ONNX published, build on the target with the agent",
            )
        manifest = builder.build(source, out_dir / platform, request)
    except (EngineBuildError, BuildRequestError) as exc:
        log.warning("engine build for %s failed: %s", platform, exc)
        return EngineStatus(EngineOutcome.FAILED, model_version, platform, f"engine build failed on {platform}: {exc}")
    return EngineStatus(
        EngineOutcome.BUILT, model_version, platform,
        f"built a {manifest.precision} engine with {manifest.builder} for {platform}",
        manifest=manifest, engine_path=out_dir / platform / "peoplenet.engine",
    )  # fmt: skip


def download_model(
    store: ObjectStore, model_version: str, dest: Path, names: tuple[str, ...] | None = None
) -> ModelManifest:
    """The published model's files (all, or those named) into dest, each verified against manifest.json."""
    from gpu_worker.engines.exceptions import EngineIntegrityError
    from gpu_worker.files import sha256_file

    try:
        manifest = ModelManifest.from_json(store.get_bytes(model_manifest_key(model_version)))
    except FileNotFoundError as exc:
        raise BuildRequestError(
            f"model {model_version} is not published (no {model_manifest_key(model_version)})"
        ) from exc
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "manifest.json").write_text(manifest.to_json())
    for digest in manifest.files:
        if (names is not None and digest.path not in names) or digest.path.startswith("engines/"):
            continue
        target = dest / digest.path
        if target.is_file() and sha256_file(target) == digest.sha256:
            continue  # already here from an earlier sync
        store.download_file(model_prefix(model_version) + digest.path, target)
        if sha256_file(target) != digest.sha256:
            target.unlink()
            raise EngineIntegrityError(f"{digest.path} of model {model_version} does not match its manifest sha256")
    return manifest


def build_engine_for_model(
    store: ObjectStore,
    model_version: str,
    facts: PlatformFacts,
    builder: EngineBuilder | None,
    *,
    work_dir: Path | None = None,
    precision: Precision | None = None,
    policy: LockPolicy | None = None,
) -> EngineStatus:
    """Engine for this host's platform of a published model: pulled if a peer built it, else built and uploaded."""
    platform = facts.platform_key
    if platform is None:
        return EngineStatus(
            EngineOutcome.NO_BUILDER, model_version, None, f"{NO_TENSORRT} ({'; '.join(facts.missing())})"
        )
    work = Path(work_dir or tempfile.mkdtemp(prefix="peoplenet-engine-"))
    model_dir = work / "model" / model_version

    def source() -> tuple[Path, BuildRequest]:
        manifest = download_model(store, model_version, model_dir)
        return choose_source(model_dir, model_version, precision, input_dims=manifest.input_dims)

    return obtain_engine(
        store, model_version, platform, builder, source, work / "engine" / model_version / platform,
        policy or LockPolicy(owner=default_owner("worker")),
    )  # fmt: skip
