"""Training checkpoints: everything needed to continue a run exactly where it stopped.

`results_dir/checkpoints/epoch_NNN.pt` holds the model (as our model-file payload), optimiser, global
step, completed epochs, loss auto-weighting state, AMP scaler (None under bf16), history and the RNG
states of torch, CUDA, numpy and Python. Written atomically; loaded with weights_only=True.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpu_worker.detection.checkpoint import save_atomic
from gpu_worker.errors import UserError

CHECKPOINT_FORMAT = "peoplenet-retrain/train-checkpoint@1"
_NAME = re.compile(r"^epoch_(\d{3,})\.pt$")


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"epoch_{epoch:03d}.pt"


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the highest epoch in a directory, or None."""
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


@dataclass
class TrainingCheckpoint:
    model: dict[str, Any]  # our model-file payload (detection.checkpoint format)
    optimizer: dict[str, Any]
    epoch: int  # completed epochs
    step: int  # optimiser steps taken
    loss_state: dict[str, torch.Tensor]
    rng: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    scaler: dict[str, Any] | None = None
    nonfinite_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: Path, checkpoint: TrainingCheckpoint) -> Path:
    return save_atomic({"format": CHECKPOINT_FORMAT, **checkpoint.__dict__}, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> TrainingCheckpoint:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign file: several exception types
        raise UserError(f"{path}: cannot be read as a training checkpoint ({exc}); delete it to start over") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a peoplenet-retrain training checkpoint")
    payload.pop("format")
    return TrainingCheckpoint(**payload)
