"""TAO-style magnitude pruning of DetectNet_v2 (`prune -pth -n -eq -pg -nf -el`)."""

from __future__ import annotations

from gpu_worker.pruning.criteria import Equalization, Normalizer
from gpu_worker.pruning.prune import (
    PruneResult,
    PruneSettings,
    apply_selection,
    count_params,
    parse_layers,
    prune_model,
    select_filters,
)

__all__ = [
    "Equalization",
    "Normalizer",
    "PruneResult",
    "PruneSettings",
    "apply_selection",
    "count_params",
    "parse_layers",
    "prune_model",
    "select_filters",
]
