"""Post-processing golden cases: hand-made coverage/bbox grids -> expected boxes."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_worker.detection.postprocess import (
    ClusteringAlgorithm,
    ClusteringConfig,
    PostProcessor,
    dbscan,
    nms,
    pairwise_iou,
)

STRIDE = 16
SCALE = 35.0
OFFSET = 0.5
GRID_H, GRID_W = 6, 8  # a 96 x 128 input


def empty_grids(num_classes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((num_classes, GRID_H, GRID_W)), np.zeros((4 * num_classes, GRID_H, GRID_W))


def put(cov: np.ndarray, bbox: np.ndarray, cls: int, row: int, col: int, box: tuple[float, ...], value: float) -> None:
    """Make cell (row, col) of class `cls` predict `box` with coverage `value` (inverse of the decode)."""
    gx, gy = col * STRIDE + OFFSET, row * STRIDE + OFFSET
    x1, y1, x2, y2 = box
    cov[cls, row, col] = value
    bbox[4 * cls : 4 * cls + 4, row, col] = np.array([gx - x1, gy - y1, x2 - gx, y2 - gy]) / SCALE


def test_pairwise_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    assert pairwise_iou(a, b) == pytest.approx(np.array([[50 / 150, 0.0], [50 / 150, 0.0]]))


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]], dtype=float)
    scores = np.array([0.6, 0.9, 0.7, 0.1])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # IoU([0,0,10,10], [1,0,11,10]) = 90/110 = 0.82: a threshold above it keeps both.
    assert nms(boxes, scores, 0.9).tolist() == [1, 2, 0]


def test_dbscan_weighted_core_points_and_border_assignment() -> None:
    # Points 0-1-2 form a chain, 3 touches only 2, 4 is alone. With weights, 3 and 4 are not core.
    d = np.full((5, 5), 1.0)
    np.fill_diagonal(d, 0.0)
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        d[i, j] = d[j, i] = 0.1
    weights = np.array([0.6, 0.6, 0.6, 0.2, 0.9])
    # min_samples 1: 0 (0.6+0.6), 1, 2 (0.6+0.6+0.2) are core; 3 (0.2+0.6=0.8) is a border; 4 (0.9) noise.
    assert dbscan(d, weights, eps=0.2, min_samples=1.0).tolist() == [0, 0, 0, 0, -1]
    # Raising min_samples above every neighbourhood sum leaves only noise.
    assert dbscan(d, weights, eps=0.2, min_samples=2.0).tolist() == [-1] * 5
    # eps below every distance: each point alone, core when its own weight reaches min_samples.
    assert dbscan(d, weights, eps=0.05, min_samples=0.5).tolist() == [0, 1, 2, -1, 3]


def test_dbscan_border_point_joins_first_cluster() -> None:
    # Two core pairs (0,1) and (3,4) both reach border point 2; it joins cluster 0, as scikit-learn does.
    d = np.full((5, 5), 1.0)
    np.fill_diagonal(d, 0.0)
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4)]:
        d[i, j] = d[j, i] = 0.1
    weights = np.array([1.5, 0.5, 0.1, 0.5, 1.5])  # sums: 2.0, 2.1, 1.1 (point 2 not core), 2.1, 2.0
    assert dbscan(d, weights, eps=0.2, min_samples=2.0).tolist() == [0, 0, 0, 1, 1]


NMS_CONFIG = ClusteringConfig(
    coverage_threshold=0.2,
    minimum_bounding_box_height=10,
    clustering_algorithm=ClusteringAlgorithm.NMS,
    nms_iou_threshold=0.5,
    nms_confidence_threshold=0.3,
)


def test_postprocess_nms_golden() -> None:
    cov, bbox = empty_grids(2)
    put(cov, bbox, 0, 1, 1, (10, 10, 40, 60), 0.9)
    put(cov, bbox, 0, 1, 2, (12, 10, 42, 60), 0.6)  # IoU 0.88 with the first: suppressed
    put(cov, bbox, 0, 4, 6, (80, 50, 120, 90), 0.7)  # separate object
    put(cov, bbox, 0, 5, 0, (0, 80, 30, 95), 0.8)  # 15 px tall: kept (> 10)
    put(cov, bbox, 0, 5, 1, (40, 88, 60, 95), 0.8)  # 7 px tall: below minimum height
    put(cov, bbox, 0, 0, 7, (100, 0, 126, 30), 0.15)  # below coverage threshold
    put(cov, bbox, 1, 2, 3, (30, 20, 70, 70), 0.25)  # class 1: above coverage, below NMS confidence
    post = PostProcessor.uniform(("person", "bag"), NMS_CONFIG)
    detections = post(cov, bbox)
    assert [(d.class_name, round(d.confidence, 3)) for d in detections] == [
        ("person", 0.9),
        ("person", 0.8),
        ("person", 0.7),
    ]
    assert detections[0].box == pytest.approx((10, 10, 40, 60), abs=1e-4)
    assert detections[1].box == pytest.approx((0, 80, 30, 95), abs=1e-4)
    assert detections[2].box == pytest.approx((80, 50, 120, 90), abs=1e-4)


def test_postprocess_clips_boxes_to_the_image() -> None:
    cov, bbox = empty_grids()
    put(cov, bbox, 0, 0, 7, (100, -20, 150, 40), 0.9)
    (det,) = PostProcessor.uniform(("person",), NMS_CONFIG)(cov, bbox)
    assert det.box == pytest.approx((100, 0, 128, 40), abs=1e-4)
    (det,) = PostProcessor.uniform(("person",), NMS_CONFIG)(cov, bbox, image_hw=(30, 120))
    assert det.box == pytest.approx((100, 0, 120, 30), abs=1e-4)


DBSCAN_CONFIG = ClusteringConfig(
    coverage_threshold=0.05,
    minimum_bounding_box_height=10,
    clustering_algorithm=ClusteringAlgorithm.DBSCAN,
    dbscan_eps=0.3,
    dbscan_min_samples=1,
    dbscan_confidence_threshold=0.5,
)


def test_postprocess_dbscan_golden() -> None:
    cov, bbox = empty_grids()
    # Object A: three cells predicting close boxes -> one cluster, coverage-weighted mean box.
    a_boxes = [(10, 10, 50, 70), (14, 10, 54, 74), (10, 14, 50, 70)]
    a_covs = [0.5, 0.3, 0.2]
    for col, (box, value) in enumerate(zip(a_boxes, a_covs, strict=True)):
        put(cov, bbox, 0, 2, col + 1, box, value)
    # Object B: two cells, total coverage 0.45 < min_samples 1 -> noise, no detection.
    put(cov, bbox, 0, 4, 6, (90, 60, 120, 95), 0.25)
    put(cov, bbox, 0, 5, 6, (91, 60, 121, 95), 0.2)
    (det,) = PostProcessor.uniform(("person",), DBSCAN_CONFIG)(cov, bbox)
    expected = (np.array(a_boxes) * np.array(a_covs)[:, None]).sum(axis=0) / sum(a_covs)
    assert det.box == pytest.approx(tuple(expected), abs=1e-4)
    assert det.confidence == pytest.approx(1.0)
    assert det.class_index == 0


def test_postprocess_dbscan_filters_confidence_and_height() -> None:
    cov, bbox = empty_grids()
    put(cov, bbox, 0, 1, 1, (10, 10, 50, 18), 0.7)  # 8 px tall cluster: dropped by minimum height
    put(cov, bbox, 0, 1, 2, (10, 10, 50, 18), 0.7)
    put(cov, bbox, 0, 4, 5, (70, 50, 110, 90), 0.6)  # weight 1.0: core, but confidence below 1.1
    put(cov, bbox, 0, 4, 6, (70, 50, 110, 90), 0.4)
    config = ClusteringConfig(**{**DBSCAN_CONFIG.__dict__, "dbscan_confidence_threshold": 1.1})
    assert PostProcessor.uniform(("person",), config)(cov, bbox) == []
    config = ClusteringConfig(**{**DBSCAN_CONFIG.__dict__, "dbscan_confidence_threshold": 0.9})
    (det,) = PostProcessor.uniform(("person",), config)(cov, bbox)
    assert det.box == pytest.approx((70, 50, 110, 90), abs=1e-4)


def test_postprocess_hybrid_runs_nms_over_dbscan_members() -> None:
    cov, bbox = empty_grids()
    put(cov, bbox, 0, 2, 1, (10, 10, 50, 70), 0.6)
    put(cov, bbox, 0, 2, 2, (12, 10, 52, 70), 0.5)
    put(cov, bbox, 0, 5, 7, (100, 60, 126, 95), 0.4)  # alone: DBSCAN noise, so NMS never sees it
    config = ClusteringConfig(**{**DBSCAN_CONFIG.__dict__, "clustering_algorithm": ClusteringAlgorithm.HYBRID})
    (det,) = PostProcessor.uniform(("person",), config)(cov, bbox)
    # NMS output is the best raw member box and its own coverage, not the cluster mean.
    assert det.box == pytest.approx((10, 10, 50, 70), abs=1e-4)
    assert det.confidence == pytest.approx(0.6)


def test_batch_and_shape_checks() -> None:
    cov, bbox = empty_grids()
    put(cov, bbox, 0, 2, 2, (10, 10, 50, 70), 0.9)
    post = PostProcessor.uniform(("person",), NMS_CONFIG)
    results = post.batch(np.stack([cov, np.zeros_like(cov)]), np.stack([bbox, bbox]))
    assert [len(r) for r in results] == [1, 0]
    with pytest.raises(ValueError, match="do not match"):
        PostProcessor.uniform(("person", "bag"), NMS_CONFIG)(cov, bbox)


def test_clustering_config_from_proto_enum_numbers() -> None:
    class Message:
        coverage_threshold = 0.01
        clustering_algorithm = 1  # proto enum number for NMS
        nms_iou_threshold = 0.4

    config = ClusteringConfig.from_message(Message())
    assert config.clustering_algorithm is ClusteringAlgorithm.NMS
    assert config.coverage_threshold == pytest.approx(0.01)
    assert config.nms_iou_threshold == pytest.approx(0.4)
    assert ClusteringAlgorithm.parse("hybrid") is ClusteringAlgorithm.HYBRID
