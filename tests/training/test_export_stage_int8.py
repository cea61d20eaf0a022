"""The torch backend's export: INT8 from quantisation-aware fine-tuning, with the QAT scales in the QDQ graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpu_worker.backends.base import ModelArtifact, StageContext
from gpu_worker.backends.torch_backend import TorchBackend
from gpu_worker.config import Settings
from gpu_worker.detection.checkpoint import load_model
from gpu_worker.export.int8 import activation_scales, zero_point_violations
from gpu_worker.specs.loader import spec_to_text
from gpu_worker.training.qat import QAT_KEY, SCALE_DIVISOR, input_quantisers
from gpu_worker.training.train import train
from peoplenet_contracts import RetrainJob


def write_spec(spec: Any, path: Path) -> Path:
    path.write_text(spec_to_text(spec))
    return path


def _context(tmp_path: Path, spec_file: Path, data: Path, final_stage: str = "train") -> StageContext:
    job = RetrainJob(
        job_id="qat-job",
        dataset="people",
        dataset_version="v1",
        dataset_prefix="datasets/people/v1/",
        manifest_key="datasets/people/v1/manifest.json",
    )
    ctx = StageContext(job=job, work_dir=tmp_path / "work", dataset_dir=data, spec_path=spec_file, device="cpu")
    ctx.extra["final_stage"] = final_stage
    return ctx


def _scales_match_model(int8_onnx: Path, qat_model: Path) -> None:
    _, meta = load_model(qat_model)
    amax = set(np.round(np.array(list(meta.extra[QAT_KEY]["activation_amax"].values())) / SCALE_DIVISOR, 7))
    scales = set(np.round(np.array(list(activation_scales(int8_onnx).values())), 7))
    assert scales and scales <= amax, (sorted(scales)[:5], sorted(amax)[:5])


def test_export_runs_qat_and_writes_its_scales(
    make_spec: Any, overfit_data: Path, narrow_model: Path, tmp_path: Path
) -> None:
    spec_file = write_spec(make_spec(overfit_data, epochs=3, batch_size=2), tmp_path / "spec.txt")
    settings = Settings.model_validate({"export": {"calibration_images": 2, "qat_epochs": 1}})
    ctx = _context(tmp_path, spec_file, overfit_data)
    result = TorchBackend(settings).export(ctx, ModelArtifact(narrow_model))
    qat_model = tmp_path / "work" / "export" / "qat" / "model.pt"
    assert result.int8_onnx is not None and result.calibration_cache is not None and qat_model.is_file()
    assert zero_point_violations(result.int8_onnx) == []
    _scales_match_model(result.int8_onnx, qat_model)
    # model.onnx is the float model that was handed in, not the QAT one.
    assert result.onnx.name == "model.onnx" and result.calibration_cache.read_text().startswith("TRT-")


def test_a_model_trained_with_enable_qat_keeps_its_own_scales(
    make_spec: Any, overfit_data: Path, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1, batch_size=2)
    spec.training_config.enable_qat = True
    trained = train(spec, tmp_path / "qat", base_model=narrow_model, device="cpu", qat_calibration_images=2)
    # Distinctive amax, so a fresh calibration could not produce the same scales by chance.
    payload = torch.load(trained.model_path, weights_only=True)
    owners = input_quantisers(load_model(trained.model_path)[1].plan)  # a projection shares its conv_1's
    order = sorted(set(owners.values()))
    payload["extra"][QAT_KEY]["activation_amax"] = {conv: 3.25 + order.index(o) / 64 for conv, o in owners.items()}
    torch.save(payload, trained.model_path)
    spec_file = write_spec(make_spec(overfit_data, epochs=3, batch_size=2), tmp_path / "spec.txt")
    settings = Settings.model_validate({"export": {"calibration_images": 2, "qat_epochs": 5}})
    result = TorchBackend(settings).export(
        _context(tmp_path, spec_file, overfit_data), ModelArtifact(trained.model_path)
    )
    assert not (tmp_path / "work" / "export" / "qat").exists()  # no second QAT
    assert result.int8_onnx is not None
    _scales_match_model(result.int8_onnx, trained.model_path)
