"""Prune in small TAO-style steps with a short retrain between them.

One deep cut of an already-pruned network (PeopleNet v2.3 is pruned) removes filters that still carry
signal and a small dataset cannot retrain it back. Several shallow cuts, each followed by a few epochs
of retraining, reach the same size while the network adapts step by step. Every step is an ordinary
`prune` (same criterion, `union`, granularity, minimum filters): only the threshold is chosen per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from gpu_worker.detection.model import DetectNetV2
from gpu_worker.pruning.criteria import IndexArray
from gpu_worker.pruning.prune import PruneResult, PruneSettings, count_params, prune_model
from gpu_worker.pruning.reconstruct import ReconstructionSettings

THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.01, 1.0, 0.01), 2))

# (pruned model, step index, channels of the input model it kept) -> retrained model
Retrain = Callable[[DetectNetV2, int, dict[str, list[int]]], DetectNetV2]


@dataclass
class IterativeResult:
    model: DetectNetV2
    params_before: int
    params_after: int
    steps: list[dict[str, float]] = field(default_factory=list)
    kept: dict[str, list[int]] = field(default_factory=dict)  # layer -> channels of the input model kept

    @property
    def reduction(self) -> float:
        return 1.0 - self.params_after / self.params_before


def prune_to_reduction(
    model: DetectNetV2,
    settings: PruneSettings,
    reduction: float,
    calibration: torch.Tensor | None = None,
    reconstruction: ReconstructionSettings | None = None,
) -> tuple[float, PruneResult]:
    """The smallest threshold whose cut removes at least `reduction` of the parameters (or the deepest cut);
    with `settings.keep_fraction` set, the largest keep fraction (in steps of 0.01) instead.

    Deeper settings never keep more filters, so a binary search over the grid finds it; only the chosen cut
    is compensated (with mean activations over `calibration` images when given) and, with `reconstruction`,
    refitted by least squares on them (pruning/reconstruct.py).
    """

    def at(depth: float) -> PruneSettings:
        if settings.keep_fraction is not None:
            return replace(settings, keep_fraction=round(1.0 - depth, 2))
        return replace(settings, threshold=depth)

    low, high = 0, len(THRESHOLDS) - 1
    best = THRESHOLDS[high]
    while low <= high:
        middle = (low + high) // 2
        trial = prune_model(model, at(THRESHOLDS[middle]), compensate=False)
        if 1.0 - trial.ratio >= reduction:
            best, high = THRESHOLDS[middle], middle - 1
        else:
            low = middle + 1
    chosen = at(best)
    value = chosen.keep_fraction if chosen.keep_fraction is not None else chosen.threshold
    return value, prune_model(model, chosen, calibration=calibration, reconstruction=reconstruction)


def prune_iteratively(
    model: DetectNetV2,
    settings: PruneSettings,
    target_reduction: float,
    step_reduction: float,
    retrain: Retrain,
    progress: Callable[[str], None] = lambda message: None,
    calibration: torch.Tensor | None = None,
    reconstruction: ReconstructionSettings | None = None,
) -> IterativeResult:
    """Cut about `step_reduction` per step and retrain, until `target_reduction` of the parameters are gone.

    The model after the last cut is returned unretrained: the pipeline's retrain stage does the final,
    full retraining. `calibration` images [N, 3, H, W] in [0, 1] let each cut fold the removed channels' mean
    activations into the next layers' biases (the zero-kernel estimate is far off once batch norm is present).
    """
    before = count_params(model)
    current = model
    steps: list[dict[str, float]] = []
    kept: dict[str, list[int]] | None = None
    while 1.0 - count_params(current) / before < target_reduction:
        remaining = 1.0 - (1.0 - target_reduction) * before / count_params(current)
        cut = min(step_reduction, remaining)
        threshold, result = prune_to_reduction(current, settings, cut, calibration, reconstruction)
        if result.params_after == result.params_before:
            progress(f"no filter falls below threshold {THRESHOLDS[-1]}: stopping at {len(steps)} step(s)")
            break
        current = result.model
        kept = compose_kept(kept, result.kept)
        done = 1.0 - result.params_after / before
        knob = "threshold" if settings.keep_fraction is None else "keep_fraction"
        steps.append({knob: threshold, "params": float(result.params_after), "reduction": done})
        progress(f"prune step {len(steps)}: {knob} {threshold:.2f} -> {result.params_after:,} parameters")
        if done < target_reduction:
            current = retrain(current, len(steps), kept)
    if kept is None:
        kept = {name: list(range(width)) for name, width in model.plan.widths.items()}
    return IterativeResult(current, before, count_params(current), steps, kept)


def compose_kept(
    earlier: Mapping[str, Sequence[int]] | None, step: Mapping[str, Sequence[int] | IndexArray]
) -> dict[str, list[int]]:
    """Teacher channel indices after a further cut: `step` indexes the channels `earlier` had kept."""
    if earlier is None:
        return {name: [int(i) for i in index] for name, index in step.items()}
    return {name: [int(earlier[name][int(i)]) for i in index] for name, index in step.items()}
