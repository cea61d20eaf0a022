"""Least-squares reconstruction after a cut: the refitted convs reproduce the unpruned model better."""

from __future__ import annotations

import torch

from gpu_worker.pruning import PruneSettings, prune_model
from gpu_worker.pruning.reconstruct import ReconstructionSettings, reconstruct
from tests.pruning.test_pruning import _model

SETTINGS = ReconstructionSettings(positions_per_image=512, ridge=1e-6)


def _output_error(reference: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        cov0, bbox0 = reference(x)
        cov1, bbox1 = model(x)
    return float((bbox0 - bbox1).norm() / bbox0.norm() + (cov0 - cov1).norm() / cov0.norm())


def test_reconstruction_of_an_uncut_model_changes_nothing() -> None:
    model = _model(use_batch_norm=True)
    images = torch.rand(4, 3, 64, 96)
    whole = prune_model(model, PruneSettings(threshold=0.0, granularity=1, min_num_filters=1))
    refit = reconstruct(model, whole.model, whole.kept, images, SETTINGS)
    assert _output_error(model, refit, torch.rand(2, 3, 64, 96)) < 1e-3


def test_reconstruction_brings_a_cut_model_closer_on_unseen_images() -> None:
    model = _model(use_batch_norm=True)
    calibration, unseen = torch.rand(8, 3, 64, 96), torch.rand(2, 3, 64, 96)
    cut = prune_model(model, PruneSettings(threshold=0.3, granularity=1, min_num_filters=1), calibration=calibration)
    assert cut.ratio < 0.9
    refit = prune_model(
        model,
        PruneSettings(threshold=0.3, granularity=1, min_num_filters=1),
        calibration=calibration,
        reconstruction=SETTINGS,
    )
    assert refit.kept.keys() == cut.kept.keys() and refit.params_after == cut.params_after
    before, after = _output_error(model, cut.model, unseen), _output_error(model, refit.model, unseen)
    assert after < 0.7 * before, (before, after)
