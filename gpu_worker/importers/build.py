"""Turn a matched network into our DetectNetV2 and write it as a model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import BN_EPSILON, DetectNetV2
from gpu_worker.errors import UserError
from gpu_worker.importers.structure import MatchedNetwork, to_state_dict

# PeopleNet's channel order (FACTS.md); used when a 3-class source comes without names.
PEOPLENET_CLASSES = ("person", "bag", "face")


@dataclass
class ImportedModel:
    model: DetectNetV2
    classes: tuple[str, ...]
    input_hw: tuple[int, int]
    source_format: str
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        extra = {"imported_from": self.source_format, **self.extra}
        return save_model(path, self.model, list(self.classes), self.input_hw, extra=extra)


def resolve_classes(num_classes: int, classes: list[str] | tuple[str, ...] | None, source: str) -> tuple[str, ...]:
    if classes is None:
        if num_classes == len(PEOPLENET_CLASSES):
            return PEOPLENET_CLASSES
        raise UserError(f"{source} has {num_classes} classes: name them in channel order with --classes a,b,...")
    if len(classes) != num_classes:
        raise UserError(f"--classes names {len(classes)} classes but {source} has {num_classes} output channels")
    return tuple(classes)


def build_model(matched: MatchedNetwork) -> DetectNetV2:
    """A DetectNetV2 with the matched plan, activation and batch-norm choice, holding the source weights."""
    model = DetectNetV2(matched.plan, use_batch_norm=matched.use_batch_norm, activation=matched.activation)
    state = model.state_dict()
    imported = to_state_dict(matched, BN_EPSILON)
    for key, value in imported.items():
        if key not in state or tuple(state[key].shape) != value.shape:
            raise UserError(f"imported tensor {key} {value.shape} does not fit the model ({state.get(key)})")
        state[key] = torch.from_numpy(value.copy())
    missing = [k for k in state if k not in imported and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"the source provides no values for {missing[:5]}")
    model.load_state_dict(state)
    return model.eval()
