"""Shared set-up for the training benchmarks: the PeopleNet spec pointed at a KITTI data set."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from gpu_worker.specs import load_experiment_spec, with_data_paths, with_pretrained_model
from gpu_worker.specs.proto.experiment_pb2 import Experiment

REPO = Path(__file__).resolve().parents[1]
PEOPLENET_SPEC = REPO / "specs" / "peoplenet_train.txt"


def scratch_spec(
    train_dir: Path, val_dir: Path | None, *, epochs: int, batch_size: int, num_layers: int = 34
) -> Experiment:
    """specs/peoplenet_train.txt on our data, from scratch (no pretrained model, nothing frozen)."""
    spec = with_data_paths(load_experiment_spec(PEOPLENET_SPEC, validate=False), train_dir, val_dir)
    spec = with_pretrained_model(spec, "")
    del spec.model_config.freeze_blocks[:]
    spec.model_config.num_layers = num_layers
    spec.training_config.num_epochs = epochs
    spec.training_config.batch_size_per_gpu = batch_size
    spec.training_config.checkpoint_interval = max(epochs, 1)
    return spec


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    else:
        info["gpu"] = None
        info["cpu"] = platform.processor() or platform.machine()
    return info
