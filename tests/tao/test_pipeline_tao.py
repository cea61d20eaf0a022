"""A whole job through the pipeline with the `tao` backend on the stand-in TAO images: prepare -> publish."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from gpu_worker.adapters import build_adapters
from gpu_worker.cli.runtime import build_worker
from gpu_worker.config import TaoSettings
from gpu_worker.pipeline.channels import read_channel
from gpu_worker.pipeline.layout import model_prefix, stage_prefix
from gpu_worker.pipeline.publish import read_model_manifest
from peoplenet_contracts import JobStatus, StageName, StageStatus
from tests.pipeline.conftest import make_settings, submit_sample

pytestmark = pytest.mark.docker


def test_tao_job_runs_through_the_pipeline_and_publishes(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", PEOPLENET_WORKER__BACKEND="tao")
    settings = settings.model_copy(update={"tao": tao_settings})
    adapters = build_adapters(settings)
    intake = submit_sample(adapters, settings, "v1", spec="demo_cpu.txt")
    assert intake.job_id

    assert build_worker(settings, adapters).run(burst=True) == 1

    record = adapters.ledger.get(intake.job_id)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert all(stage.status is StageStatus.DONE for stage in record.stages.values()), record.stages
    store = adapters.store
    # TAO's own artefacts, in the job's run folder
    assert store.exists(stage_prefix(intake.job_id, "prepare") + "tao/dataset_convert.txt")
    assert store.exists(stage_prefix(intake.job_id, "retrain") + "weights/model.hdf5")
    manifest = read_model_manifest(store, record.model_version or "")
    assert manifest is not None and manifest.backend == "tao"
    assert manifest.classes == ["person", "bag", "face"] and manifest.input_dims == (3, 192, 320)
    assert manifest.metrics["AP/person"] == pytest.approx(0.525)  # parsed from TAO's evaluate output
    files = {digest.path: digest for digest in manifest.files}
    for name in ("model.onnx", "labels.txt", "report.html", "config_infer_primary_peoplenet.txt"):
        data = store.get_bytes(model_prefix(manifest.model_version) + name)
        assert hashlib.sha256(data).hexdigest() == files[name].sha256
    assert (
        record.stages[StageName.BUILD_ENGINE].detail and "no TensorRT" in record.stages[StageName.BUILD_ENGINE].detail
    )
    pointer, _ = read_channel(store, "production")
    assert pointer is not None and pointer.model_version == manifest.model_version
    assert docker_engine.client.containers.list(all=True) == []
