"""DetectNet_v2 cost: weighted BCE on coverage, coverage-norm-weighted L1 on boxes, combined per class.

As TAO's cost functions and CostAutoWeightHook:
- cov cost per class = mean over (batch, cells) of w_t * BCE(t, p), BCE with eps 1e-5 inside the logs,
  w_t = coverage_foreground_weight where t > 0.5 else 1 - coverage_foreground_weight;
- bbox cost per class = mean over (batch, 4, cells) of cov_norm * |pred - target|;
- total = sum over classes and objectives of cost * class_weight / sum(class_weights) * objective weight.
Objective weights per class are normalised to sum 1. Without auto-weighting they move linearly from
initial_weight to weight_target over training (TAO keeps them at initial_weight; the two agree for the
usual specs, where both are equal). With auto-weighting they start at the normalised initial weights
and, at every epoch end, become weight_target / (epoch's summed cost), normalised, clamped to
[min_objective_weight, max_objective_weight].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gpu_worker.detection.rasterizer import Targets

EPSILON = 1e-5
OBJECTIVES = ("cov", "bbox")


@dataclass(frozen=True)
class ClassCost:
    name: str
    class_weight: float = 1.0
    coverage_foreground_weight: float = 0.05
    initial_weights: tuple[float, float] = (1.0, 10.0)  # (cov, bbox)
    target_weights: tuple[float, float] = (1.0, 10.0)


@dataclass(frozen=True)
class CostConfig:
    classes: tuple[ClassCost, ...]
    enable_autoweighting: bool = False
    min_objective_weight: float = 0.0001
    max_objective_weight: float = 0.9999

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @classmethod
    def from_spec(cls, spec: Any) -> CostConfig:
        """From a TAO Experiment's cost_function_config (target_classes order = channel order)."""
        config = spec.cost_function_config
        classes = []
        for target in config.target_classes:
            weights = {o.name: (float(o.initial_weight), float(o.weight_target)) for o in target.objectives}
            unknown = set(weights) - set(OBJECTIVES)
            if unknown:
                raise ValueError(f"cost_function_config class {target.name!r}: unknown objectives {sorted(unknown)}")
            cov, bbox = weights.get("cov", (0.0, 0.0)), weights.get("bbox", (0.0, 0.0))
            classes.append(
                ClassCost(
                    name=target.name,
                    class_weight=float(target.class_weight),
                    coverage_foreground_weight=float(target.coverage_foreground_weight),
                    initial_weights=(cov[0], bbox[0]),
                    target_weights=(cov[1], bbox[1]),
                )
            )
        if not classes:
            raise ValueError("cost_function_config has no target_classes")
        return cls(
            classes=tuple(classes),
            enable_autoweighting=bool(config.enable_autoweighting),
            min_objective_weight=float(config.min_objective_weight),
            max_objective_weight=float(config.max_objective_weight),
        )


class LossOutput(NamedTuple):
    total: Tensor  # scalar
    components: Tensor  # [C, 2] per class (cov, bbox) mean costs, before weighting


def coverage_cost(pred: Tensor, target: Tensor, foreground_weight: Tensor) -> Tensor:
    """Elementwise weighted BCE; foreground_weight [C] broadcast over [B, C, h, w]."""
    pred, target = pred.float(), target.float()
    bce = -(target * torch.log(pred + EPSILON) + (1.0 - target) * torch.log(1.0 - pred + EPSILON))
    fg = foreground_weight[None, :, None, None]
    return torch.where(target > 0.5, fg, 1.0 - fg) * bce


def bbox_cost(pred: Tensor, target: Tensor, cov_norm: Tensor) -> Tensor:
    """Elementwise L1 weighted by cov_norm: [B, C, 4, h, w]."""
    b, channels, h, w = pred.shape
    diff = (pred.float() - target.float()).abs().view(b, channels // 4, 4, h, w)
    return diff * cov_norm.float()[:, :, None]


def _normalised(weights: Tensor) -> Tensor:
    total = weights.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, weights / torch.where(total > 0, total, 1.0), torch.zeros_like(weights))


class DetectNetLoss:
    """Callable cost with the auto-weighting state (kept in training checkpoints)."""

    def __init__(self, config: CostConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        class_w = torch.tensor([c.class_weight for c in config.classes], dtype=torch.float32)
        self.class_weights = (class_w / class_w.sum()).to(self.device)  # [C]
        self.foreground = torch.tensor([c.coverage_foreground_weight for c in config.classes]).to(self.device)
        self.initial = torch.tensor([c.initial_weights for c in config.classes], dtype=torch.float32).to(self.device)
        self.target = torch.tensor([c.target_weights for c in config.classes], dtype=torch.float32).to(self.device)
        self.auto_weights = _normalised(self.initial)  # [C, 2]
        self.cost_sums = torch.zeros_like(self.initial)

    def objective_weights(self, progress: float) -> Tensor:
        """Normalised [C, 2] (cov, bbox) weights at training progress in [0, 1]."""
        if self.config.enable_autoweighting:
            return self.auto_weights
        p = min(max(progress, 0.0), 1.0)
        return _normalised(self.initial + (self.target - self.initial) * p)

    def __call__(
        self, cov: Tensor, bbox: Tensor, targets: Targets, progress: float = 0.0, image_weights: Tensor | None = None
    ) -> LossOutput:
        """image_weights [B] (data source weights) scale each image's cost; default 1."""
        cov_cost = coverage_cost(cov, targets.cov, self.foreground)  # [B, C, h, w]
        box_cost = bbox_cost(bbox, targets.bbox, targets.cov_norm)  # [B, C, 4, h, w]
        if image_weights is not None:
            w = image_weights.float()
            cov_cost = cov_cost * w[:, None, None, None]
            box_cost = box_cost * w[:, None, None, None, None]
        cov_mean = cov_cost.mean(dim=(0, 2, 3))  # [C]
        bbox_mean = box_cost.mean(dim=(0, 2, 3, 4))  # [C]
        components = torch.stack([cov_mean, bbox_mean], dim=1)  # [C, 2]
        weights = self.objective_weights(progress)
        total = (components * weights * self.class_weights[:, None]).sum()
        if self.config.enable_autoweighting:
            self.cost_sums += components.detach()
        return LossOutput(total=total, components=components)

    def end_epoch(self) -> None:
        """TAO's epoch-end auto-weighting update; resets the cost sums."""
        if not self.config.enable_autoweighting:
            return
        sums = self.cost_sums
        inverse = torch.where(sums == 0, sums, 1.0 / torch.where(sums == 0, 1.0, sums))
        raw = self.target * inverse
        total = raw.sum(dim=1, keepdim=True)
        new = (raw / torch.where(total == 0, 1.0, total)).clamp(
            self.config.min_objective_weight, self.config.max_objective_weight
        )
        self.auto_weights = torch.where(total == 0, self.auto_weights, new)
        self.cost_sums = torch.zeros_like(self.cost_sums)

    def state_dict(self) -> dict[str, Tensor]:
        return {"auto_weights": self.auto_weights.cpu(), "cost_sums": self.cost_sums.cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.auto_weights = state["auto_weights"].to(self.device)
        self.cost_sums = state["cost_sums"].to(self.device)


def regularization(params: Sequence[Tensor], kind: str, weight: float) -> Tensor | None:
    """TAO regularizer {type weight} on conv kernels: L1 = w * sum|k|, L2 = w * sum k^2; None for NO_REG."""
    if kind in ("NO_REG", "") or weight == 0.0 or not params:
        return None
    # One multi-tensor kernel instead of one reduction per layer.
    if kind == "L1":
        return weight * torch.stack(torch._foreach_norm(list(params), 1)).sum()
    if kind == "L2":
        return weight * torch.stack(torch._foreach_norm(list(params), 2)).square().sum()
    raise ValueError(f"unknown regularizer type {kind!r}: use NO_REG, L1 or L2")
