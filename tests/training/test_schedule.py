"""TAO soft_start_annealing schedule: exponential ramp, plateau, exponential decay."""

from __future__ import annotations

import math

import pytest

from gpu_worker.training.schedule import SoftStartAnnealing


def test_shape() -> None:
    s = SoftStartAnnealing(min_lr=1e-6, max_lr=1e-3, soft_start=0.1, annealing=0.7)
    assert math.isclose(s(0.0), 1e-6)
    assert math.isclose(s(0.1), 1e-3) and math.isclose(s(0.4), 1e-3) and math.isclose(s(0.7), 1e-3)
    assert math.isclose(s(1.0), 1e-6)
    # Exponential (linear in log lr): halfway through each ramp is the geometric mean.
    assert math.isclose(s(0.05), math.sqrt(1e-6 * 1e-3))
    assert math.isclose(s(0.85), math.sqrt(1e-6 * 1e-3))
    ramp = [s(p / 100) for p in range(0, 11)]
    decay = [s(p / 100) for p in range(70, 101)]
    assert ramp == sorted(ramp) and decay == sorted(decay, reverse=True)
    assert math.isclose(s.at_step(50, 100), 1e-3)


def test_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        SoftStartAnnealing(min_lr=1e-6, max_lr=1e-3, soft_start=0.8, annealing=0.7)
