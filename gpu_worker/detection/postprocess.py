"""DetectNet_v2 post-processing: coverage/bbox grids -> per-class detections.

Per class: keep grid cells with coverage > `coverage_threshold`, decode their boxes with
`box_coder.decode` (grid centre `i*stride + offset`, distances x `scale`, clipped to the image), then
cluster with DBSCAN (distance 1 - IoU, coverage as sample weight; box = coverage-weighted mean,
confidence = sum of member coverages), NMS, or HYBRID (NMS over the raw members of the clusters DBSCAN kept), as TAO's
`postprocessing_config.target_class_config[cls].clustering_config` says.

DBSCAN follows scikit-learn's semantics exactly as TAO calls it (`metric="precomputed"`,
`sample_weight=cov`, `min_samples=max(int(min_samples), 1)`): a cell is a core point when the
coverage summed over its eps-neighbourhood (itself included, distance <= eps) reaches min_samples.
Clustering is numpy; no scikit-learn or torchvision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_worker.detection.channel_plan import OUTPUT_STRIDE

FloatArray = npt.NDArray[np.floating[Any]]

DEFAULT_BBOX_SCALE = 35.0
DEFAULT_BBOX_OFFSET = 0.5


class ClusteringAlgorithm(StrEnum):
    DBSCAN = "DBSCAN"
    NMS = "NMS"
    HYBRID = "HYBRID"

    @classmethod
    def parse(cls, value: object) -> ClusteringAlgorithm:
        """Accept the proto enum number (DBSCAN=0, NMS=1, HYBRID=2) or its name, any case."""
        if isinstance(value, ClusteringAlgorithm):
            return value
        if isinstance(value, int):
            return list(cls)[value]
        return cls(str(value).upper())


@dataclass(frozen=True)
class ClusteringConfig:
    """One class's `clustering_config` (field names as in TAO's proto)."""

    coverage_threshold: float = 0.005
    minimum_bounding_box_height: float = 20.0
    clustering_algorithm: ClusteringAlgorithm = ClusteringAlgorithm.DBSCAN
    dbscan_eps: float = 0.15
    dbscan_min_samples: float = 0.05
    dbscan_confidence_threshold: float = 0.1
    nms_iou_threshold: float = 0.5
    nms_confidence_threshold: float = 0.1

    @classmethod
    def from_message(cls, message: Any) -> ClusteringConfig:
        """Build from a parsed `clustering_config` (protobuf message or any object with its fields)."""
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = getattr(message, name, getattr(defaults, name))
            values[name] = ClusteringAlgorithm.parse(value) if name == "clustering_algorithm" else float(value)
        return cls(**values)


@dataclass(frozen=True)
class Detection:
    """One detected box in pixels of the image the grids were computed for: [x1, y1, x2, y2]."""

    class_index: int
    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def scaled(self, factor: float) -> Detection:
        """Coordinates multiplied by `factor` (e.g. 1/letterbox-scale to go back to the original image)."""
        return replace(self, x1=self.x1 * factor, y1=self.y1 * factor, x2=self.x2 * factor, y2=self.y2 * factor)


def pairwise_iou(
    boxes_a: FloatArray, boxes_b: FloatArray, eps: float = 1e-9, dtype: npt.DTypeLike = np.float64
) -> FloatArray:
    """IoU of every box in `boxes_a` [N, 4] with every box in `boxes_b` [M, 4] -> [N, M]."""
    a = np.asarray(boxes_a, dtype=dtype).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=dtype).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, eps)


def decode_image(
    bbox: FloatArray,
    image_hw: tuple[int, int],
    stride: int = OUTPUT_STRIDE,
    scale: float = DEFAULT_BBOX_SCALE,
    offset: float = DEFAULT_BBOX_OFFSET,
) -> FloatArray:
    """One image's bbox head [4C, h, w] -> boxes [C, h, w, 4] in pixels, clipped to `image_hw`."""
    import torch

    from gpu_worker.detection.box_coder import decode

    coded = torch.from_numpy(np.ascontiguousarray(bbox, dtype=np.float32))[None]
    boxes = decode(coded, scale=scale, offset=offset, stride=stride, image_hw=image_hw)[0]
    return boxes.numpy().astype(np.float64)


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy NMS: indices of kept boxes, highest score first; a box is dropped when IoU > threshold."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[pairwise_iou(boxes[best : best + 1], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def dbscan(distances: FloatArray, weights: FloatArray, eps: float, min_samples: float) -> npt.NDArray[np.intp]:
    """DBSCAN on a precomputed distance matrix with sample weights; labels per point, -1 = noise.

    Same result as `sklearn.cluster.DBSCAN(eps, min_samples, metric="precomputed").fit_predict(
    distances, sample_weight=weights)`: clusters are numbered in order of their first core point; a
    border point reachable from several clusters joins the first.
    """
    n = distances.shape[0]
    neighbours = distances <= eps
    np.fill_diagonal(neighbours, True)  # a point is always in its own neighbourhood (distance 0)
    core = (neighbours * np.asarray(weights, dtype=np.float64)[None, :]).sum(axis=1) >= min_samples
    labels = np.full(n, -1, dtype=np.intp)
    cluster = 0
    for seed in range(n):
        if labels[seed] != -1 or not core[seed]:
            continue
        labels[seed] = cluster
        frontier = [seed]
        while frontier:
            point = frontier.pop()
            reached = np.flatnonzero(neighbours[point] & (labels == -1))
            labels[reached] = cluster
            frontier.extend(int(i) for i in reached[core[reached]])  # only core points expand further
        cluster += 1
    return labels


def _dbscan_clusters(
    boxes: FloatArray, covs: FloatArray, config: ClusteringConfig
) -> list[tuple[FloatArray, float, npt.NDArray[np.intp]]]:
    """(weighted mean box, summed coverage, member indices) of each DBSCAN cluster passing the filters."""
    distances = 1.0 - pairwise_iou(boxes, boxes, dtype=np.float32)  # [K, K]; float32 halves the memory traffic
    labels = dbscan(distances, covs, config.dbscan_eps, max(int(config.dbscan_min_samples), 1))
    clusters = []
    for label in range(int(labels.max(initial=-1)) + 1):
        members = np.flatnonzero(labels == label)
        weights = covs[members]
        total = float(weights.sum())
        mean_box = (boxes[members] * weights[:, None]).sum(axis=0) / total
        if mean_box[3] - mean_box[1] <= config.minimum_bounding_box_height:
            continue
        if total < config.dbscan_confidence_threshold:
            continue
        clusters.append((mean_box, total, members))
    return clusters


def cluster_class(boxes: FloatArray, covs: FloatArray, config: ClusteringConfig) -> list[tuple[FloatArray, float]]:
    """Cluster one class's candidate boxes [K, 4] with coverages [K] -> [(box, confidence)], best first."""
    if covs.size == 0:
        return []
    algorithm = config.clustering_algorithm
    results: list[tuple[FloatArray, float]]
    if algorithm == ClusteringAlgorithm.DBSCAN:
        results = [(box, conf) for box, conf, _ in _dbscan_clusters(boxes, covs, config)]
    else:
        if algorithm == ClusteringAlgorithm.HYBRID:
            members = [m for _, _, m in _dbscan_clusters(boxes, covs, config)]
            chosen = np.concatenate(members) if members else np.zeros(0, dtype=np.intp)
            boxes, covs = boxes[chosen], covs[chosen]
        # Dropping low scores first gives the same result as TAO's filter after hard NMS, faster.
        confident = covs > config.nms_confidence_threshold
        boxes, covs = boxes[confident], covs[confident]
        keep = nms(boxes, covs, config.nms_iou_threshold)
        results = [
            (boxes[i], float(covs[i])) for i in keep if boxes[i, 3] - boxes[i, 1] > config.minimum_bounding_box_height
        ]
    return sorted(results, key=lambda item: -item[1])


@dataclass(frozen=True)
class PostProcessor:
    """Turns one image's network outputs into detections, class by class (channel order = `class_names`)."""

    class_names: tuple[str, ...]
    configs: Mapping[str, ClusteringConfig]
    bbox_scale: float = DEFAULT_BBOX_SCALE
    bbox_offset: float = DEFAULT_BBOX_OFFSET
    stride: int = OUTPUT_STRIDE

    @classmethod
    def from_spec(cls, spec: Any, class_names: Sequence[str]) -> PostProcessor:
        """Read `postprocessing_config` and `model_config.objective_set.bbox` from a parsed experiment spec."""
        from gpu_worker.errors import UserError

        target_configs = spec.postprocessing_config.target_class_config
        missing = [name for name in class_names if name not in target_configs]
        if missing:
            raise UserError(
                f"postprocessing_config.target_class_config has no entry for class(es) {missing}; "
                f"add a clustering_config for every class of cost_function_config.target_classes"
            )
        configs = {name: ClusteringConfig.from_message(target_configs[name].clustering_config) for name in class_names}
        bbox = spec.model_config.objective_set.bbox
        # As the rasteriser reads them for training: an unset scale means 35, an unset offset 0.
        scale = float(bbox.scale) or DEFAULT_BBOX_SCALE
        return cls(tuple(class_names), configs, bbox_scale=scale, bbox_offset=float(bbox.offset))

    @classmethod
    def uniform(cls, class_names: Sequence[str], config: ClusteringConfig, **kwargs: Any) -> PostProcessor:
        return cls(tuple(class_names), dict.fromkeys(class_names, config), **kwargs)

    def __call__(self, cov: FloatArray, bbox: FloatArray, image_hw: tuple[int, int] | None = None) -> list[Detection]:
        """cov [C, h, w], bbox [4C, h, w] of one image -> detections sorted by confidence.

        `image_hw` (H, W) is the size boxes are clipped to; default: the network input (grid x stride).
        For a letterboxed image pass the content size, so cells over the padding cannot yield boxes.
        """
        num_classes, grid_h, grid_w = cov.shape
        if num_classes != len(self.class_names) or bbox.shape != (4 * num_classes, grid_h, grid_w):
            raise ValueError(
                f"outputs {cov.shape} / {bbox.shape} do not match {len(self.class_names)} classes {self.class_names}"
            )
        height, width = image_hw if image_hw is not None else (grid_h * self.stride, grid_w * self.stride)
        decoded = decode_image(bbox, (height, width), self.stride, self.bbox_scale, self.bbox_offset)
        detections: list[Detection] = []
        for index, name in enumerate(self.class_names):
            config = self.configs[name]
            class_cov = np.asarray(cov[index], dtype=np.float64).reshape(-1)
            cells = np.flatnonzero(class_cov > config.coverage_threshold)
            if cells.size == 0:
                continue
            boxes = decoded[index].reshape(-1, 4)[cells]
            inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # empty once clipped: off-image
            cells, boxes = cells[inside], boxes[inside]
            for box, confidence in cluster_class(boxes, class_cov[cells], config):
                x1, y1, x2, y2 = (float(v) for v in box)
                detections.append(Detection(index, name, x1, y1, x2, y2, confidence))
        return sorted(detections, key=lambda d: -d.confidence)

    def batch(
        self,
        cov: FloatArray,
        bbox: FloatArray,
        image_hw: tuple[int, int] | None = None,
        sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[list[Detection]]:
        """cov [N, C, h, w], bbox [N, 4C, h, w] -> one detection list per image.

        `sizes` gives each image its own clip size (H, W), e.g. the letterboxed content without padding.
        """
        if sizes is not None and len(sizes) != cov.shape[0]:
            raise ValueError(f"{len(sizes)} sizes for {cov.shape[0]} images")
        return [self(cov[i], bbox[i], sizes[i] if sizes is not None else image_hw) for i in range(cov.shape[0])]
