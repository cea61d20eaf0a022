"""Object-store key layout, in one place (ARCHITECTURE.md, 'The job, end to end')."""

from __future__ import annotations

import hashlib

MODELS_ROOT = "models/peoplenet"


def dataset_prefix(dataset: str, version: str) -> str:
    return f"datasets/{dataset}/{version}/"


def run_prefix(job_id: str) -> str:
    return f"runs/{job_id}/"


def stage_prefix(job_id: str, stage: str) -> str:
    return f"{run_prefix(job_id)}{stage}/"


def done_marker_key(job_id: str, stage: str) -> str:
    return f"{stage_prefix(job_id, stage)}_done.json"


def model_prefix(model_version: str) -> str:
    return f"{MODELS_ROOT}/{model_version}/"


def model_manifest_key(model_version: str) -> str:
    return f"{model_prefix(model_version)}manifest.json"


def channel_key(channel: str) -> str:
    return f"{MODELS_ROOT}/channels/{channel}.json"


def engine_prefix(model_version: str, platform: str) -> str:
    return f"{model_prefix(model_version)}engines/{platform}/"


def job_id_for(dataset: str, version: str, manifest_digest: str) -> str:
    """Deterministic: the same upload (same manifest bytes) always maps to the same job."""
    digest = hashlib.sha256(f"{dataset}\0{version}\0{manifest_digest}".encode()).hexdigest()[:12]
    return f"{dataset}-{version}-{digest}"


def model_version_for(job_id: str) -> str:
    """One model version per job, so a rerun publishes to the same place (and finds it done)."""
    return f"m-{job_id}"
