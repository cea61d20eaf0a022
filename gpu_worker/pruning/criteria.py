"""TAO's filter-selection rules (nvidia_tao_tf1/core/pruning: `PruneMinWeight`), as pure numpy.

- statistic: L2 norm of each filter's kernel (bias ignored);
- normalisation per layer: `max` divides by the largest norm; `L2` divides by the L2 norm of the
  vector of norms and multiplies by its length;
- layers tied by an element-wise add merge their normalised statistics (`union`: max,
  `intersection`: min, `arithmetic_mean`, `geometric_mean`);
- retained: filters with statistic strictly above the threshold, at least `min_num_filters` (capped
  at the layer's width), the count rounded UP to a multiple of `granularity` (capped at the width);
  when rounding adds filters, the ones with the highest statistic are taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


class Normalizer(StrEnum):
    MAX = "max"
    L2 = "L2"


class Equalization(StrEnum):
    UNION = "union"
    INTERSECTION = "intersection"
    ARITHMETIC_MEAN = "arithmetic_mean"
    GEOMETRIC_MEAN = "geometric_mean"


def filter_norms(weight: npt.NDArray[np.floating]) -> FloatArray:
    """L2 norm of each output filter of an [O, I, kh, kw] kernel -> [O]."""
    flat = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    return np.sqrt(np.sum(flat**2, axis=1))


def normalize(stat: FloatArray, normalizer: Normalizer) -> FloatArray:
    if normalizer is Normalizer.MAX:
        return stat / np.max(stat)
    return stat / np.sqrt(np.sum(stat**2)) * len(stat)


def merge(stats: Sequence[FloatArray], criterion: Equalization) -> FloatArray:
    stacked = np.stack(stats)
    if criterion is Equalization.UNION:
        return np.amax(stacked, axis=0)
    if criterion is Equalization.INTERSECTION:
        return np.amin(stacked, axis=0)
    if criterion is Equalization.ARITHMETIC_MEAN:
        return np.mean(stacked, axis=0)
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(stacked), axis=0))


def retained_count(stat: FloatArray, threshold: float, granularity: int, min_num_filters: int) -> int:
    depth = len(stat)
    count = max(min(min_num_filters, depth), int(np.sum(stat > threshold)))
    if count % granularity:
        count += granularity - count % granularity
    return min(count, depth)


def retained_indices(stat: FloatArray, threshold: float, granularity: int, min_num_filters: int) -> IndexArray:
    """Sorted indices of the filters to keep."""
    return top_indices(stat, retained_count(stat, threshold, granularity, min_num_filters))


def best_indices(stat: FloatArray, count: int, granularity: int, min_num_filters: int) -> IndexArray:
    """Sorted indices of the `count` best filters, with the minimum and the granularity rounding of TAO's rule."""
    depth = len(stat)
    count = max(min(min_num_filters, depth), count)
    if count % granularity:
        count += granularity - count % granularity
    return top_indices(stat, min(count, depth))


def top_indices(stat: FloatArray, count: int) -> IndexArray:
    order = np.argsort(-stat, kind="stable")
    return np.sort(order[:count]).astype(np.int64)
