"""Detection metrics as TAO's DetectNet_v2 `evaluate` computes them: per-class AP and mAP.

Per class, predictions and ground truth are first filtered by `evaluation_box_config` (min/max height
and width); ground truth outside the range is dropped, so missing it is not a miss (TAO drops such
predictions and ground truth alike). Predictions are matched in order of decreasing confidence to the
ground truth box of highest IoU in the same image (Pascal VOC): a true positive when that IoU >=
`minimum_detection_ground_truth_overlap[cls]` and the box is still unmatched, else a false positive.
A class without ground truth scores AP 0 and still counts in mAP, as in TAO.

AP modes (`average_precision_mode`): SAMPLE = 11-point interpolated (VOC 2007: mean over recall
r in {0, 0.1, ..., 1} of the best precision at recall >= r); INTEGRATE = area under the interpolated
precision envelope from recall 0 (VOC 2010+). Differences from TAO's code, on purpose: IoU is
continuous (TAO rounds boxes to integers and adds 1 pixel to widths), and INTEGRATE starts at recall 0
(TAO's loop skips the first recall step, so a perfect detector of one object would score 0 there).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gpu_worker.detection.postprocess import Detection, pairwise_iou

if TYPE_CHECKING:
    from rich.table import Table


class APMode(StrEnum):
    SAMPLE = "SAMPLE"
    INTEGRATE = "INTEGRATE"

    @classmethod
    def parse(cls, value: object) -> APMode:
        """Accept the proto enum number (SAMPLE=0, INTEGRATE=1) or its name, any case."""
        if isinstance(value, APMode):
            return value
        if isinstance(value, int):
            return list(cls)[value]
        return cls(str(value).upper())


@dataclass(frozen=True)
class BoxFilter:
    """`evaluation_box_config` of one class, in pixels; a maximum of 0 (proto3's unset) means no limit."""

    minimum_height: float = 0.0
    maximum_height: float = 0.0
    minimum_width: float = 0.0
    maximum_width: float = 0.0

    @classmethod
    def from_message(cls, message: Any) -> BoxFilter:
        return cls(**{name: float(getattr(message, name, 0.0)) for name in cls.__dataclass_fields__})

    def accepts(self, boxes: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.bool_]:
        """Mask of boxes [N, 4] whose size lies within the limits (inclusive, as TAO)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        width = boxes[:, 2] - boxes[:, 0]
        height = boxes[:, 3] - boxes[:, 1]
        ok = (height >= self.minimum_height) & (width >= self.minimum_width)
        if self.maximum_height > 0:
            ok &= height <= self.maximum_height
        if self.maximum_width > 0:
            ok &= width <= self.maximum_width
        return ok


@dataclass(frozen=True)
class GroundTruth:
    """One image's labelled boxes [K, 4] (x1, y1, x2, y2) with class indices [K] (-1 = not a target class)."""

    boxes: npt.NDArray[np.float64]
    classes: npt.NDArray[np.intp]

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(np.zeros((0, 4)), np.zeros(0, dtype=np.intp))

    @classmethod
    def from_lists(cls, boxes: Sequence[Sequence[float]], classes: Sequence[int]) -> GroundTruth:
        return cls(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.intp))


@dataclass(frozen=True)
class EvalSettings:
    """What `evaluation_config` says, per class name."""

    iou_thresholds: Mapping[str, float]
    box_filters: Mapping[str, BoxFilter] = field(default_factory=dict)
    mode: APMode = APMode.SAMPLE

    @classmethod
    def from_spec(cls, spec: Any, class_names: Sequence[str]) -> EvalSettings:
        from gpu_worker.errors import UserError

        config = spec.evaluation_config
        overlaps = config.minimum_detection_ground_truth_overlap
        missing = [name for name in class_names if name not in overlaps]
        if missing:
            raise UserError(
                f"evaluation_config.minimum_detection_ground_truth_overlap has no entry for class(es) {missing}; "
                f"add one (e.g. key: '{missing[0]}' value: 0.5) for every target class"
            )
        box_configs = config.evaluation_box_config
        return cls(
            iou_thresholds={name: float(overlaps[name]) for name in class_names},
            box_filters={
                name: BoxFilter.from_message(box_configs[name]) for name in class_names if name in box_configs
            },
            mode=APMode.parse(config.average_precision_mode),
        )


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    ap: float
    num_gt: int
    num_predictions: int
    true_positives: int
    precision: float  # at the lowest confidence, i.e. over all predictions
    recall: float
    mean_iou: float  # over true positives; 0 when there are none


@dataclass(frozen=True)
class EvalMetrics:
    classes: tuple[ClassMetrics, ...]
    mode: APMode
    num_images: int

    @property
    def mean_ap(self) -> float:
        return float(np.mean([c.ap for c in self.classes])) if self.classes else 0.0

    def ap(self, name: str) -> float:
        return next(c.ap for c in self.classes if c.name == name)

    def to_dict(self) -> dict[str, float]:
        """Flat metrics keyed like 'AP/person', 'mAP' (what `metrics.json` and the quality gate read)."""
        out: dict[str, float] = {"mAP": self.mean_ap}
        for c in self.classes:
            out[f"AP/{c.name}"] = c.ap
            out[f"precision/{c.name}"] = c.precision
            out[f"recall/{c.name}"] = c.recall
            out[f"mean_iou/{c.name}"] = c.mean_iou
        return out

    def write_json(self, path: Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Flat metrics plus a `details` block (counts, mode) and any `extra` fields (model, data)."""
        payload: dict[str, Any] = dict(self.to_dict())
        payload["details"] = {
            "ap_mode": str(self.mode),
            "num_images": self.num_images,
            "classes": [asdict(c) for c in self.classes],
        }
        if extra:
            payload.update(extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path

    def to_table(self, title: str = "Evaluation") -> Table:
        from rich.table import Table

        table = Table(title=f"{title} ({self.mode} AP, {self.num_images} images)")
        for column in ("class", "AP", "GT", "pred", "TP", "precision", "recall", "mean IoU"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for c in self.classes:
            table.add_row(
                c.name,
                f"{c.ap:.4f}",
                str(c.num_gt),
                str(c.num_predictions),
                str(c.true_positives),
                f"{c.precision:.3f}",
                f"{c.recall:.3f}",
                f"{c.mean_iou:.3f}",
            )
        table.add_section()
        table.add_row("mAP", f"{self.mean_ap:.4f}", "", "", "", "", "", "")
        return table


def average_precision(precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64], mode: APMode) -> float:
    """AP from cumulative precision/recall arrays (predictions in decreasing confidence)."""
    if recall.size == 0:
        return 0.0
    if mode == APMode.SAMPLE:
        total = 0.0
        for threshold in np.linspace(0.0, 1.0, 11):
            reached = precision[recall >= threshold - 1e-12]
            total += float(reached.max()) if reached.size else 0.0
        return total / 11.0
    # Envelope: best precision at any recall >= r, then sum rectangles over the recall steps from 0.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def match_class(
    detections: Sequence[Sequence[Detection]],
    ground_truths: Sequence[GroundTruth],
    class_index: int,
    iou_threshold: float,
    box_filter: BoxFilter | None,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], int]:
    """True-positive flags and matched IoUs of one class's predictions (sorted by confidence), and #GT."""
    predictions: list[tuple[float, int, tuple[float, float, float, float]]] = []
    gt_per_image: list[npt.NDArray[np.float64]] = []
    for image_index, (image_dets, gt) in enumerate(zip(detections, ground_truths, strict=True)):
        boxes = gt.boxes[gt.classes == class_index]
        if box_filter is not None:
            boxes = boxes[box_filter.accepts(boxes)]
        gt_per_image.append(boxes)
        for det in image_dets:
            if det.class_index != class_index:
                continue
            if box_filter is not None and not box_filter.accepts(np.asarray([det.box]))[0]:
                continue
            predictions.append((det.confidence, image_index, det.box))
    predictions.sort(key=lambda p: -p[0])  # stable: ties keep image order
    matched = [np.zeros(len(b), dtype=bool) for b in gt_per_image]
    is_tp = np.zeros(len(predictions), dtype=bool)
    ious = np.zeros(len(predictions))
    for rank, (_, image_index, box) in enumerate(predictions):
        gt_boxes = gt_per_image[image_index]
        if gt_boxes.size == 0:
            continue
        overlaps = pairwise_iou(np.asarray([box]), gt_boxes)[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not matched[image_index][best]:
            matched[image_index][best] = True
            is_tp[rank] = True
            ious[rank] = overlaps[best]
    return is_tp, ious, sum(len(b) for b in gt_per_image)


def evaluate_detections(
    detections: Sequence[Sequence[Detection]],
    ground_truths: Sequence[GroundTruth],
    class_names: Sequence[str],
    settings: EvalSettings,
) -> EvalMetrics:
    """Per-class AP (and counts, precision, recall, mean IoU) over a data set; one entry per image in both."""
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truths)} images")
    results = []
    for class_index, name in enumerate(class_names):
        is_tp, ious, num_gt = match_class(
            detections, ground_truths, class_index, settings.iou_thresholds[name], settings.box_filters.get(name)
        )
        tp = np.cumsum(is_tp).astype(np.float64)
        fp = np.cumsum(~is_tp).astype(np.float64)
        precision = tp / np.maximum(tp + fp, 1.0)
        recall = tp / num_gt if num_gt else np.zeros_like(tp)
        num_tp = int(is_tp.sum())
        results.append(
            ClassMetrics(
                name=name,
                ap=average_precision(precision, recall, settings.mode) if num_gt else 0.0,
                num_gt=num_gt,
                num_predictions=int(is_tp.size),
                true_positives=num_tp,
                precision=float(precision[-1]) if precision.size else 0.0,
                recall=float(recall[-1]) if recall.size else 0.0,
                mean_iou=float(ious[is_tp].mean()) if num_tp else 0.0,
            )
        )
    return EvalMetrics(classes=tuple(results), mode=settings.mode, num_images=len(ground_truths))
