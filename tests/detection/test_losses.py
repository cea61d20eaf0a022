"""DetectNet_v2 cost: weighted BCE / L1 values, zero box loss without boxes, objective weights."""

from __future__ import annotations

import math

import torch

from gpu_worker.detection.losses import ClassCost, CostConfig, DetectNetLoss, regularization
from gpu_worker.detection.rasterizer import ClassRasterParams, RasterizerConfig, Targets, rasterize

RASTER = RasterizerConfig(classes=(ClassRasterParams(),), deadzone_radius=0.67)


def _loss(**kwargs: object) -> DetectNetLoss:
    return DetectNetLoss(CostConfig(classes=(ClassCost("person", **kwargs),)))  # type: ignore[arg-type]


def test_image_without_boxes_gives_zero_box_loss() -> None:
    targets = rasterize([torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], RASTER, (4, 4), (64, 64))
    bbox = torch.randn(1, 4, 4, 4) * 5  # whatever the head says
    out = _loss()(torch.rand(1, 1, 4, 4), bbox, targets)
    assert float(out.components[0, 1]) == 0.0
    assert float(out.components[0, 0]) > 0.0  # coverage still learns "nothing here"


def test_values_match_tao_formulas() -> None:
    cov_t = torch.tensor([[[[1.0, 0.0], [0.25, 0.75]]]])
    targets = Targets(cov=cov_t, cov_norm=torch.full_like(cov_t, 0.5), bbox=torch.zeros(1, 4, 2, 2))
    pred = torch.tensor([[[[0.9, 0.2], [0.5, 0.5]]]])
    bbox = torch.ones(1, 4, 2, 2)
    loss = _loss(coverage_foreground_weight=0.05, initial_weights=(1.0, 3.0), target_weights=(1.0, 3.0))
    out = loss(pred, bbox, targets)
    eps = 1e-5

    def bce(t: float, p: float) -> float:
        return -(t * math.log(p + eps) + (1 - t) * math.log(1 - p + eps))

    cells = [(1.0, 0.9, 0.05), (0.0, 0.2, 0.95), (0.25, 0.5, 0.95), (0.75, 0.5, 0.05)]
    cov_expected = sum(w * bce(t, p) for t, p, w in cells) / 4
    assert math.isclose(float(out.components[0, 0]), cov_expected, rel_tol=1e-5)
    assert math.isclose(float(out.components[0, 1]), 0.5, rel_tol=1e-6)  # |1 - 0| * 0.5 everywhere
    assert math.isclose(float(out.total), 0.25 * cov_expected + 0.75 * 0.5, rel_tol=1e-5)


def test_objective_weights_move_from_initial_to_target() -> None:
    loss = _loss(initial_weights=(1.0, 1.0), target_weights=(1.0, 3.0))
    torch.testing.assert_close(loss.objective_weights(0.0), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(loss.objective_weights(1.0), torch.tensor([[0.25, 0.75]]))


def test_class_weights_are_normalised() -> None:
    config = CostConfig(classes=(ClassCost("a", class_weight=3.0), ClassCost("b", class_weight=1.0)))
    torch.testing.assert_close(DetectNetLoss(config).class_weights, torch.tensor([0.75, 0.25]))


def test_autoweighting_updates_at_epoch_end() -> None:
    config = CostConfig(
        classes=(ClassCost("p", initial_weights=(1.0, 10.0), target_weights=(1.0, 1.0)),),
        enable_autoweighting=True,
        min_objective_weight=0.01,
        max_objective_weight=0.99,
    )
    loss = DetectNetLoss(config)
    torch.testing.assert_close(loss.objective_weights(0.0), torch.tensor([[1 / 11, 10 / 11]]))
    loss.cost_sums = torch.tensor([[0.2, 0.05]])  # summed cov / bbox costs of an epoch
    loss.end_epoch()
    # weight_target / cost, normalised: (5, 20) / 25
    torch.testing.assert_close(loss.objective_weights(0.5), torch.tensor([[0.2, 0.8]]))
    assert float(loss.cost_sums.sum()) == 0.0


def test_regularizers() -> None:
    w = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]
    assert float(regularization(w, "L1", 0.5)) == 3.0  # type: ignore[arg-type]
    assert float(regularization(w, "L2", 0.5)) == 7.0  # type: ignore[arg-type]
    assert regularization(w, "NO_REG", 0.5) is None
