"""TensorRT engines per GPU platform: detection, builders behind one interface, distribution by lock.

Heavy tools (tensorrt, docker) are imported only inside the builder that runs them.
"""

from __future__ import annotations

from gpu_worker.engines.base import (
    ENGINE_FILE,
    ENGINE_MANIFEST_FILE,
    BuildRequest,
    EngineBuilder,
    HardwareCompatibility,
    Int8Mode,
)
from gpu_worker.engines.distribution import (
    EngineOutcome,
    EngineStatus,
    LockPolicy,
    fetch_engine,
    obtain_engine,
    upload_engine,
    verify_engine,
)
from gpu_worker.engines.exceptions import (
    BuildRequestError,
    EngineBuildError,
    EngineIntegrityError,
    ModelFormatError,
    PlatformUnavailable,
)
from gpu_worker.engines.platform import PlatformFacts, Probes, detect_platform
from gpu_worker.engines.select import select_builder
from gpu_worker.engines.stage import build_engine_for_model, build_local_engine, choose_source, download_model

__all__ = [
    "ENGINE_FILE",
    "ENGINE_MANIFEST_FILE",
    "BuildRequest",
    "BuildRequestError",
    "EngineBuildError",
    "EngineBuilder",
    "EngineIntegrityError",
    "EngineOutcome",
    "EngineStatus",
    "HardwareCompatibility",
    "Int8Mode",
    "LockPolicy",
    "ModelFormatError",
    "PlatformFacts",
    "PlatformUnavailable",
    "Probes",
    "build_engine_for_model",
    "build_local_engine",
    "choose_source",
    "detect_platform",
    "download_model",
    "fetch_engine",
    "obtain_engine",
    "select_builder",
    "upload_engine",
    "verify_engine",
]
