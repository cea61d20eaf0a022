"""Our DetectNet_v2 model file: one torch.save dict, loadable with weights_only=True.

{"format": "peoplenet-retrain/detectnet_v2@1", "plan": ChannelPlan JSON, "use_batch_norm": bool,
 "activation": "relu" | "relu6", "classes": [names in channel order], "input_hw": [H, W],
 "state_dict": {TAO-named tensors}, "extra": {json-like}}
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.model import Activation, DetectNetV2
from gpu_worker.errors import UserError

MODEL_FORMAT = "peoplenet-retrain/detectnet_v2@1"


@dataclass(frozen=True)
class ModelMeta:
    """Everything in a model file except the weights."""

    plan: ChannelPlan
    use_batch_norm: bool
    classes: tuple[str, ...]
    input_hw: tuple[int, int]
    activation: Activation = Activation.RELU
    extra: dict[str, Any] = field(default_factory=dict)


def model_payload(
    model: DetectNetV2,
    classes: list[str] | tuple[str, ...],
    input_hw: tuple[int, int],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict save_model writes (training checkpoints embed it too)."""
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.num_classes} classes")
    return {
        "format": MODEL_FORMAT,
        "plan": model.plan.to_json(),
        "use_batch_norm": model.use_batch_norm,
        "activation": str(model.activation),
        "classes": list(classes),
        "input_hw": [int(input_hw[0]), int(input_hw[1])],
        "state_dict": {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }


def save_model(
    path: str | Path,
    model: DetectNetV2,
    classes: list[str] | tuple[str, ...],
    input_hw: tuple[int, int],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the model atomically (temp file + rename), so readers never see half a file."""
    return save_atomic(model_payload(model, classes, input_hw, extra), Path(path))


def save_atomic(payload: dict[str, Any], path: Path) -> Path:
    """torch.save through a temp file + rename: readers (and checkpoint sync) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_model_meta(payload: dict[str, Any], source: str) -> ModelMeta:
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise UserError(f"{source}: not a peoplenet-retrain model file (format {found!r}, expected {MODEL_FORMAT!r})")
    try:
        return ModelMeta(
            plan=ChannelPlan.from_json(payload["plan"]),
            use_batch_norm=bool(payload["use_batch_norm"]),
            classes=tuple(str(c) for c in payload["classes"]),
            input_hw=(int(payload["input_hw"][0]), int(payload["input_hw"][1])),
            activation=Activation(payload.get("activation", Activation.RELU)),
            extra=dict(payload.get("extra") or {}),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{source}: damaged model file ({exc})") from exc


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DetectNetV2, ModelMeta]:
    """Load a model file written by save_model; raises UserError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or truncated files
        raise UserError(f"{path}: cannot be read as a peoplenet-retrain model file ({exc})") from exc
    meta = read_model_meta(payload, str(path))
    model = DetectNetV2(meta.plan, use_batch_norm=meta.use_batch_norm, activation=meta.activation)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the channel plan stored in the file ({exc})") from exc
    return model.to(map_location), meta
