"""AP on hand-made cases with known values, for both average_precision_mode settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpu_worker.detection.metrics import (
    APMode,
    BoxFilter,
    EvalSettings,
    GroundTruth,
    average_precision,
    evaluate_detections,
)
from gpu_worker.detection.postprocess import Detection

CLASSES = ("person", "bag")


def det(box: tuple[float, float, float, float], confidence: float, cls: int = 0) -> Detection:
    return Detection(cls, CLASSES[cls], *box, confidence=confidence)


def settings(mode: APMode, **kwargs: object) -> EvalSettings:
    return EvalSettings(iou_thresholds={"person": 0.5, "bag": 0.5}, mode=mode, **kwargs)  # type: ignore[arg-type]


A = (10.0, 10.0, 50.0, 90.0)
B = (100.0, 20.0, 140.0, 100.0)
FAR = (300.0, 300.0, 340.0, 380.0)


@pytest.mark.parametrize("mode", list(APMode))
def test_perfect_detections_score_one(mode: APMode) -> None:
    gts = [GroundTruth.from_lists([A, B], [0, 0]), GroundTruth.from_lists([A], [0])]
    dets = [[det(A, 0.9), det(B, 0.8)], [det((11, 10, 50, 91), 0.7)]]
    metrics = evaluate_detections(dets, gts, ("person",), settings(mode))
    assert metrics.ap("person") == pytest.approx(1.0)
    assert metrics.mean_ap == pytest.approx(1.0)
    person = metrics.classes[0]
    assert (person.num_gt, person.true_positives, person.precision, person.recall) == (3, 3, 1.0, 1.0)
    assert 0.95 < person.mean_iou <= 1.0


@pytest.mark.parametrize(("mode", "expected"), [(APMode.SAMPLE, (6 + 5 * 2 / 3) / 11), (APMode.INTEGRATE, 5 / 6)])
def test_one_false_positive_between_two_hits(mode: APMode, expected: float) -> None:
    # Ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    gts = [GroundTruth.from_lists([A, B], [0, 0])]
    dets = [[det(A, 0.9), det(FAR, 0.8), det(B, 0.7)]]
    assert evaluate_detections(dets, gts, ("person",), settings(mode)).ap("person") == pytest.approx(expected)


@pytest.mark.parametrize(("mode", "expected"), [(APMode.SAMPLE, 6 / 11), (APMode.INTEGRATE, 0.5)])
def test_one_miss(mode: APMode, expected: float) -> None:
    gts = [GroundTruth.from_lists([A, B], [0, 0])]
    metrics = evaluate_detections([[det(A, 0.9)]], gts, ("person",), settings(mode))
    assert metrics.ap("person") == pytest.approx(expected)
    assert metrics.classes[0].recall == pytest.approx(0.5)


def test_duplicate_low_iou_and_wrong_class_are_false_positives() -> None:
    gts = [GroundTruth.from_lists([A, B], [0, 1])]
    shifted = (30.0, 10.0, 70.0, 90.0)  # IoU with A = 20*80 / (2*40*80 - 20*80) = 1/3
    dets = [[det(A, 0.9), det(A, 0.8), det(shifted, 0.7), det(B, 0.6, cls=0), det(B, 0.5, cls=1)]]
    metrics = evaluate_detections(dets, gts, CLASSES, settings(APMode.INTEGRATE))
    person, bag = metrics.classes
    assert (person.num_predictions, person.true_positives, person.num_gt) == (4, 1, 1)
    assert person.ap == pytest.approx(1.0)  # the only GT is found first; later FPs do not lower the envelope
    assert person.precision == pytest.approx(0.25)
    assert bag.ap == pytest.approx(1.0)
    assert metrics.mean_ap == pytest.approx(1.0)


def test_per_class_iou_threshold() -> None:
    gts = [GroundTruth.from_lists([A], [0])]
    shifted = (20.0, 10.0, 60.0, 90.0)  # IoU 30/50 = 0.6
    dets = [[det(shifted, 0.9)]]
    loose = EvalSettings(iou_thresholds={"person": 0.5}, mode=APMode.SAMPLE)
    strict = EvalSettings(iou_thresholds={"person": 0.7}, mode=APMode.SAMPLE)
    assert evaluate_detections(dets, gts, ("person",), loose).ap("person") == pytest.approx(1.0)
    assert evaluate_detections(dets, gts, ("person",), strict).ap("person") == 0.0
    assert evaluate_detections(dets, gts, ("person",), loose).classes[0].mean_iou == pytest.approx(0.6)


def test_box_filters_drop_ground_truth_and_predictions_outside_range() -> None:
    small = (200.0, 200.0, 210.0, 212.0)  # 10 x 12 px: below a 20 px minimum height
    gts = [GroundTruth.from_lists([A, small], [0, 0])]
    filters = {"person": BoxFilter(minimum_height=20, maximum_height=0, minimum_width=10, maximum_width=0)}
    # Missing the small GT is not a miss; a small prediction is ignored, not a false positive.
    only_a = evaluate_detections([[det(A, 0.9)]], gts, ("person",), settings(APMode.SAMPLE, box_filters=filters))
    assert only_a.ap("person") == pytest.approx(1.0)
    assert only_a.classes[0].num_gt == 1
    with_small = evaluate_detections(
        [[det(small, 0.95), det(A, 0.9)]], gts, ("person",), settings(APMode.SAMPLE, box_filters=filters)
    )
    assert with_small.ap("person") == pytest.approx(1.0)
    assert with_small.classes[0].num_predictions == 1
    # Without filters the small GT counts: one miss.
    unfiltered = evaluate_detections([[det(A, 0.9)]], gts, ("person",), settings(APMode.SAMPLE))
    assert unfiltered.ap("person") == pytest.approx(6 / 11)


def test_box_filter_maximums() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 100, 50], [0, 0, 50, 100]], dtype=float)
    f = BoxFilter(minimum_height=5, maximum_height=60, minimum_width=5, maximum_width=80)
    assert f.accepts(boxes).tolist() == [True, False, False]


def test_no_ground_truth_and_no_predictions() -> None:
    metrics = evaluate_detections(
        [[], []], [GroundTruth.empty(), GroundTruth.empty()], ("person",), settings(APMode.SAMPLE)
    )
    assert metrics.ap("person") == 0.0
    assert average_precision(np.zeros(0), np.zeros(0), APMode.INTEGRATE) == 0.0


def test_metrics_json_and_table(tmp_path: Path) -> None:
    gts = [GroundTruth.from_lists([A, B], [0, 1])]
    metrics = evaluate_detections([[det(A, 0.9), det(B, 0.8, cls=1)]], gts, CLASSES, settings(APMode.SAMPLE))
    path = metrics.write_json(tmp_path / "out" / "metrics.json", extra={"model": "m.pt"})
    data = json.loads(path.read_text())
    assert data["AP/person"] == pytest.approx(1.0)
    assert data["AP/bag"] == pytest.approx(1.0)
    assert data["mAP"] == pytest.approx(1.0)
    assert data["model"] == "m.pt"
    assert data["details"]["ap_mode"] == "SAMPLE"
    assert [c["name"] for c in data["details"]["classes"]] == ["person", "bag"]
    assert metrics.to_table().row_count == 3


def test_settings_from_spec_like_message() -> None:
    class Box:
        minimum_height = 20
        maximum_height = 9999
        minimum_width = 10
        maximum_width = 9999

    class Evaluation:
        minimum_detection_ground_truth_overlap = {"person": 0.6, "bag": 0.5}  # noqa: RUF012
        evaluation_box_config = {"person": Box()}  # noqa: RUF012
        average_precision_mode = 1

    class Spec:
        evaluation_config = Evaluation()

    parsed = EvalSettings.from_spec(Spec(), CLASSES)
    assert parsed.mode is APMode.INTEGRATE
    assert parsed.iou_thresholds == {"person": 0.6, "bag": 0.5}
    assert parsed.box_filters["person"].minimum_height == 20
    assert "bag" not in parsed.box_filters
