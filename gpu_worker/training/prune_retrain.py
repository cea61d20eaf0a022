"""Iterative pruning with short retrains between the cuts (see gpu_worker/pruning/iterative.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gpu_worker.detection.checkpoint import ModelMeta, load_model, save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.pruning import PruneSettings
from gpu_worker.pruning.iterative import IterativeResult, prune_iteratively
from gpu_worker.pruning.reconstruct import ReconstructionSettings
from gpu_worker.training.distill import DEFAULT_DISTILL_WEIGHT
from gpu_worker.training.hints import KEPT_CHANNELS_KEY

CALIBRATION_IMAGES = 32  # mean activations for the bias compensation of each cut


def prune_with_retraining(
    model: DetectNetV2,
    meta: ModelMeta,
    settings: PruneSettings,
    retrain_spec: Any,
    work: Path,
    *,
    target_reduction: float,
    step_reduction: float,
    step_epochs: int | None,
    device: str = "auto",
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = lambda message: None,
    distill_weight: float | None = DEFAULT_DISTILL_WEIGHT,
    teacher: Path | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    hint_weight: float = 0.0,
    reconstruct: bool = False,
) -> IterativeResult:
    """Cut and retrain (`step_epochs` of the retrain spec each time; default a quarter of its epochs) until
    `target_reduction` is reached.

    Each retrain distils from `teacher` (default: `model` before the first cut, saved under `work`) with
    `distill_weight`; None retrains on the ground truth alone. `hint_weight` > 0 adds conv-by-conv feature
    hints from the teacher (training/hints.py); `reconstruct` refits each cut by least squares on the
    calibration images (pruning/reconstruct.py).
    """
    from gpu_worker.specs import load_experiment_spec
    from gpu_worker.specs.proto.experiment_pb2 import Experiment
    from gpu_worker.training.train import resolve_device, train

    base_spec = retrain_spec if isinstance(retrain_spec, Experiment) else load_experiment_spec(retrain_spec)
    step_spec = Experiment()
    step_spec.CopyFrom(base_spec)
    epochs = step_epochs or max(1, base_spec.training_config.num_epochs // 4)
    step_spec.training_config.num_epochs = epochs
    step_spec.training_config.checkpoint_interval = epochs

    if distill_weight is not None and teacher is None:
        teacher = save_model(work / "teacher.pt", model, meta.classes, meta.input_hw, extra=dict(meta.extra))
    weight = distill_weight if distill_weight is not None else 0.0

    def retrain(pruned: DetectNetV2, step: int, kept: dict[str, list[int]]) -> DetectNetV2:
        step_dir = work / f"step_{step:02d}"
        extra = {**meta.extra, KEPT_CHANNELS_KEY: kept}
        start = save_model(step_dir / "pruned.pt", pruned, meta.classes, meta.input_hw, extra=extra)
        result = train(
            step_spec,
            step_dir,
            base_model=start,
            device=device,
            cache_dir=cache_dir,
            progress=progress,
            teacher=teacher if distill_weight is not None else None,
            distill_weight=weight,
            hint_weight=hint_weight if distill_weight is not None else 0.0,
        )
        retrained, _ = load_model(result.model_path)
        return retrained

    calibration = training_images(base_spec, calibration_images)
    refit = ReconstructionSettings(device=str(resolve_device(device))) if reconstruct else None
    return prune_iteratively(
        model.cpu(), settings, target_reduction, step_reduction, retrain, progress, calibration, refit
    )


def training_images(spec: Any, count: int) -> torch.Tensor:
    """The first `count` training images of the spec, letterboxed to its input size: [N, 3, H, W] in [0, 1]."""
    from gpu_worker.specs.info import input_size
    from gpu_worker.training.dataset import select_splits
    from gpu_worker.training.letterbox import load_image_letterboxed

    width, height = input_size(spec)
    train_samples, _ = select_splits(spec)
    pixels = [load_image_letterboxed(item.sample.image, width, height)[0] for item in train_samples[:count]]
    return torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255.0 for p in pixels])
