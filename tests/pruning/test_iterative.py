"""Iterative pruning: TAO cuts in small steps with a retrain between them."""

from __future__ import annotations

import math

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

    def retrain(pruned: DetectNetV2, step: int, kept: dict[str, list[int]]) -> DetectNetV2:
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


def test_batch_norm_scaled_ranking_follows_the_batch_norm_gain() -> None:
    model = _model(use_batch_norm=True)
    bn = model.bn_conv1
    with torch.no_grad():  # equal kernels, but batch norm silences half of conv1's channels
        model.conv1.weight.copy_(torch.ones_like(model.conv1.weight))
        bn.weight.fill_(1.0)
        bn.weight[::2] = 0.01
    tao = prune_model(model, PruneSettings(threshold=0.5, min_num_filters=1, granularity=1))
    scaled = prune_model(
        model, PruneSettings(threshold=0.5, min_num_filters=1, granularity=1, scale_by_batch_norm=True)
    )
    width = model.plan.widths["conv1"]
    assert list(tao.kept["conv1"]) == list(range(width))  # TAO sees equal kernel norms and keeps all
    assert list(scaled.kept["conv1"]) == list(range(1, width, 2))  # the silenced half goes


def test_keep_fraction_cuts_every_layer_alike() -> None:
    model = _model(use_batch_norm=True)
    fraction, result = prune_to_reduction(
        model, PruneSettings(keep_fraction=1.0, granularity=1, min_num_filters=1), 0.3
    )
    assert 1 - result.ratio >= 0.3 and 0 < fraction < 1
    for name, width in model.plan.widths.items():
        if name not in ("output_cov", "output_bbox"):
            assert len(result.kept[name]) == math.ceil(width * fraction), name
    # A global threshold takes some layers far deeper than others for the same reduction.
    _, tao = prune_to_reduction(model, PruneSettings(granularity=1, min_num_filters=1), 0.3)
    shares = [len(tao.kept[n]) / w for n, w in model.plan.widths.items() if n not in ("output_cov", "output_bbox")]
    assert max(shares) - min(shares) > 0.2
