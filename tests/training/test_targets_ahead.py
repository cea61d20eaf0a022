"""Targets rasterised ahead of the step (BatchStream `prepare`) match the ones the step would make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gpu_worker.detection.checkpoint import load_model
from gpu_worker.detection.losses import CostConfig, DetectNetLoss
from gpu_worker.detection.rasterizer import RasterizerConfig, rasterize
from gpu_worker.specs.info import target_class_names
from gpu_worker.training.data import AugmentConfig, BatchLoader, prepare_cache
from gpu_worker.training.engine import StepOptions, Trainer, make_optimizer
from gpu_worker.training.schedule import SoftStartAnnealing
from gpu_worker.training.stream import BatchStream


def _trainer(spec: Any, model_file: Path) -> Trainer:
    model, _ = load_model(model_file)
    names = target_class_names(spec)
    return Trainer(
        model,
        make_optimizer(model, 1e-3, 1e-8, 0.9, 0.999),
        DetectNetLoss(CostConfig.from_spec(spec)),
        RasterizerConfig.from_spec(spec, names),
        SoftStartAnnealing.from_spec(spec),
        10,
        torch.device("cpu"),
        StepOptions(regularizer="L1", regularizer_weight=1e-6),
    )


def test_output_grid_guess_matches_the_model(make_spec: Any, overfit_data: Path, narrow_model: Path) -> None:
    trainer = _trainer(make_spec(overfit_data, epochs=1), narrow_model)
    trainer.model.eval()
    for hw in [(160, 256), (150, 250), (97, 33)]:
        with torch.no_grad():
            cov, _ = trainer.model(torch.zeros(1, 3, *hw))
        assert trainer.output_hw(hw) == tuple(cov.shape[-2:])


def test_stream_targets_equal_in_step_targets(
    make_spec: Any, overfit_data: Path, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1, batch_size=2)
    spec.augmentation_config.spatial_augmentation.hflip_probability = 0.5
    spec.augmentation_config.spatial_augmentation.translate_max_x = 8.0
    prepared = prepare_cache(spec, tmp_path / "cache")
    loader = BatchLoader(prepared.train, 2, shuffle=True, augment=AugmentConfig.from_spec(spec), seed=3)
    ahead, in_step = _trainer(spec, narrow_model), _trainer(spec, narrow_model)  # same weights
    with BatchStream(loader, torch.device("cpu"), range(2), prepare=ahead.targets_for) as stream:
        for epoch in range(2):
            for batch in stream.epoch(epoch):
                assert batch.targets is not None
                hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
                expected = rasterize(batch.boxes, batch.classes, ahead.raster, ahead.output_hw(hw), hw)
                for got, want in zip(batch.targets, expected, strict=True):
                    torch.testing.assert_close(got, want, rtol=0, atol=0)
                a = ahead.train_step(batch.images, batch.boxes, batch.classes, batch.weights, batch.targets)
                b = in_step.train_step(batch.images, batch.boxes, batch.classes, batch.weights)
                torch.testing.assert_close(a, b, rtol=0, atol=0)
