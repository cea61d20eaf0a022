"""TAO's soft_start_annealing learning-rate schedule, per optimiser step.

progress = step / total_steps. Before `soft_start` the rate rises exponentially from min_lr to max_lr,
stays at max_lr until `annealing`, then decays exponentially back to min_lr at progress 1:
lr = exp(log(min_lr) + t * (log(max_lr) - log(min_lr))) with t = progress / soft_start,
1, or (1 - progress) / (1 - annealing) in the three phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SoftStartAnnealing:
    min_lr: float
    max_lr: float
    soft_start: float
    annealing: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.soft_start <= 1.0 or not 0.0 <= self.annealing <= 1.0:
            raise ValueError("soft_start and annealing are fractions of training in [0, 1]")
        if self.soft_start >= self.annealing:
            raise ValueError(f"soft_start ({self.soft_start}) must be below annealing ({self.annealing})")
        if self.min_lr <= 0.0 or self.max_lr <= 0.0:
            raise ValueError("min_learning_rate and max_learning_rate must be > 0")

    @classmethod
    def from_spec(cls, spec: Any) -> SoftStartAnnealing:
        schedule = spec.training_config.learning_rate.soft_start_annealing_schedule
        return cls(
            min_lr=float(schedule.min_learning_rate),
            max_lr=float(schedule.max_learning_rate),
            soft_start=float(schedule.soft_start),
            annealing=float(schedule.annealing),
        )

    def __call__(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress < self.soft_start:
            t = progress / self.soft_start
        elif progress > self.annealing:
            t = (1.0 - progress) / (1.0 - self.annealing) if self.annealing < 1.0 else 1.0
        else:
            t = 1.0
        return math.exp(math.log(self.min_lr) + t * (math.log(self.max_lr) - math.log(self.min_lr)))

    def at_step(self, step: int, total_steps: int) -> float:
        return self(step / max(total_steps, 1))
