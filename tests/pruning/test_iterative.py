"""Iterative pruning: TAO cuts in small steps with a retrain between them."""

from __future__ import annotations

import torch

from gpu_worker.detection.model import DetectNetV2
from gpu_worker.pruning import PruneSettings, count_params, prune_model
from gpu_worker.pruning.iterative import THRESHOLDS, prune_iteratively, prune_to_reduction
from tests.pruning.test_pruning import _model


def test_prune_to_reduction_takes_the_smallest_threshold_that_reaches_it() -> None:
    model = _model(use_batch_norm=True)
    threshold, result = prune_to_reduction(model, PruneSettings(), 0.2)
    assert 1 - result.ratio >= 0.2
    below = THRESHOLDS[THRESHOLDS.index(threshold) - 1]
    assert 1 - prune_model(model, PruneSettings(threshold=below)).ratio < 0.2


def test_steps_reach_the_target_with_a_retrain_between_cuts() -> None:
    model = _model(use_batch_norm=True)
    before = count_params(model)
    retrained: list[tuple[int, int]] = []

    def retrain(pruned: DetectNetV2, step: int) -> DetectNetV2:
        pruned.plan.validate()
        with torch.no_grad():  # every step gets a valid, runnable model
            cov, bbox = pruned(torch.rand(1, 3, 64, 96))
        assert cov.shape[1] == 2 and bbox.shape[1] == 8
        retrained.append((step, count_params(pruned)))
        return pruned

    result = prune_iteratively(model, PruneSettings(), target_reduction=0.3, step_reduction=0.08, retrain=retrain)

    assert result.reduction >= 0.3 and result.params_before == before
    assert len(result.steps) >= 3  # several shallow cuts, not one deep one
    reductions = [step["reduction"] for step in result.steps]
    assert reductions == sorted(reductions) and reductions[-2] < 0.3 <= reductions[-1]
    assert [step for step, _ in retrained] == list(range(1, len(result.steps)))  # no retrain after the last cut
    assert all(params == step["params"] for (_, params), step in zip(retrained, result.steps, strict=False))
