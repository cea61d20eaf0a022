"""Our own model files as an import source: load, validate, and pass through unchanged."""

from __future__ import annotations

from pathlib import Path

import torch

from gpu_worker.detection.checkpoint import load_model
from gpu_worker.errors import UserError
from gpu_worker.importers.build import ImportedModel


def read_native(path: Path, classes: list[str] | None) -> ImportedModel:
    model, meta = load_model(path)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{path}: tensor {name} holds NaN or infinite values; the model is damaged")
    if classes is not None and tuple(classes) != meta.classes and len(classes) != len(meta.classes):
        raise UserError(f"--classes names {len(classes)} classes but {path} has {len(meta.classes)}")
    names = tuple(classes) if classes is not None else meta.classes
    return ImportedModel(model.eval(), names, meta.input_hw, "native", extra=dict(meta.extra))
