"""Store keys of engines and their build locks (model and channel keys live in pipeline.layout)."""

from __future__ import annotations

from gpu_worker.engines.base import ENGINE_FILE, ENGINE_MANIFEST_FILE
from gpu_worker.pipeline.layout import channel_key, engine_prefix, model_manifest_key, model_prefix

BUILD_LOCK_FILE = ".build-lock"

__all__ = [
    "build_lock_key",
    "channel_key",
    "engine_key",
    "engine_manifest_key",
    "engine_prefix",
    "model_manifest_key",
    "model_prefix",
]


def engine_key(model_version: str, platform: str) -> str:
    return engine_prefix(model_version, platform) + ENGINE_FILE


def engine_manifest_key(model_version: str, platform: str) -> str:
    return engine_prefix(model_version, platform) + ENGINE_MANIFEST_FILE


def build_lock_key(model_version: str, platform: str) -> str:
    return engine_prefix(model_version, platform) + BUILD_LOCK_FILE
