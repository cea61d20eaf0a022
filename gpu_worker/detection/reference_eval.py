"""The fixed reference protocol used to compare any DetectNet_v2 predictor with NVIDIA's PeopleNet.

Protocol (FACTS.md; the numbers measured with the real PeopleNet were taken this way): letterbox each
image to 960x544 (scale to fit, pad right/bottom), keep cells with coverage > 0.1, decode boxes
(stride 16, scale 35, offset 0.5), NMS at IoU 0.5, then COCO-style 101-point interpolated AP at
IoU >= 0.5 with ground truth scaled into the letterboxed frame. It ignores the spec on purpose, so
a torch model, an ONNX file and the TFLite reference are measured the same way.

A predictor is any callable taking one letterboxed uint8 RGB image [H, W, 3] and returning the
network outputs (cov [C, H/16, W/16], bbox [4C, H/16, W/16]) as numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gpu_worker.detection.postprocess import (
    ClusteringAlgorithm,
    ClusteringConfig,
    Detection,
    PostProcessor,
    pairwise_iou,
)

PredictFn = Callable[[npt.NDArray[np.uint8]], tuple[npt.NDArray[Any], npt.NDArray[Any]]]

REFERENCE_INPUT_W = 960
REFERENCE_INPUT_H = 544
REFERENCE_CONFIG = ClusteringConfig(
    coverage_threshold=0.1,
    minimum_bounding_box_height=0.0,
    clustering_algorithm=ClusteringAlgorithm.NMS,
    nms_iou_threshold=0.5,
    nms_confidence_threshold=0.1,
)


@dataclass(frozen=True)
class ReferenceResult:
    """AP50 per model channel (NaN where the data has no ground truth of that class)."""

    ap50: dict[int, float]
    num_gt: dict[int, int]
    num_detections: dict[int, int]
    num_images: int

    def named(self, class_names: tuple[str, ...] | list[str]) -> dict[str, float]:
        """{"AP50/person": ...} for the channels measured."""
        return {f"AP50/{class_names[c]}": ap for c, ap in self.ap50.items()}


def coco_ap101(is_tp: npt.NDArray[np.bool_], num_gt: int) -> float:
    """101-point interpolated AP (COCO) from TP flags of predictions sorted by decreasing score."""
    if num_gt == 0:
        return math.nan
    if is_tp.size == 0:
        return 0.0
    tp = np.cumsum(is_tp)
    precision = tp / np.arange(1, is_tp.size + 1)
    recall = tp / num_gt
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    thresholds = np.linspace(0.0, 1.0, 101)
    indices = np.searchsorted(recall, thresholds, side="left")
    sampled = np.where(indices < recall.size, envelope[np.minimum(indices, recall.size - 1)], 0.0)
    return float(sampled.mean())


def coco_match(
    detections: list[tuple[float, int, tuple[float, float, float, float]]],
    gt_per_image: list[npt.NDArray[np.float64]],
    iou_threshold: float = 0.5,
) -> npt.NDArray[np.bool_]:
    """COCO greedy matching: by decreasing score, each prediction takes the unmatched GT of highest IoU."""
    order = sorted(range(len(detections)), key=lambda i: -detections[i][0])
    matched = [np.zeros(len(g), dtype=bool) for g in gt_per_image]
    is_tp = np.zeros(len(detections), dtype=bool)
    for rank, index in enumerate(order):
        _, image, box = detections[index]
        gts = gt_per_image[image]
        if gts.size == 0:
            continue
        overlaps = np.where(matched[image], -1.0, pairwise_iou(np.asarray([box]), gts)[0])
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            matched[image][best] = True
            is_tp[rank] = True
    return is_tp


def reference_ap50(
    predict_fn: PredictFn,
    kitti_dir: Path,
    class_map: Mapping[str, int],
    input_w: int = REFERENCE_INPUT_W,
    input_h: int = REFERENCE_INPUT_H,
    limit: int | None = None,
) -> ReferenceResult:
    """AP50 of `predict_fn` on a KITTI folder; `class_map`: label name (any case) -> model channel.

    Labels of other classes are ignored; channels not in `class_map` are not measured.
    """
    from gpu_worker.training.kitti import list_kitti_samples, read_kitti_labels
    from gpu_worker.training.letterbox import load_image_letterboxed

    class_map = {name.lower(): channel for name, channel in class_map.items()}
    channels = sorted(set(class_map.values()))
    samples = list_kitti_samples(Path(kitti_dir))[:limit]
    postprocess: PostProcessor | None = None
    detections: dict[int, list[tuple[float, int, tuple[float, float, float, float]]]] = {c: [] for c in channels}
    gt: dict[int, list[npt.NDArray[np.float64]]] = {c: [] for c in channels}
    for image_index, sample in enumerate(samples):
        image, scale = load_image_letterboxed(sample.image, input_w, input_h)
        cov, bbox = predict_fn(image)
        if postprocess is None:
            names = tuple(str(c) for c in range(cov.shape[0]))
            postprocess = PostProcessor.uniform(names, REFERENCE_CONFIG)
        image_dets: list[Detection] = postprocess(np.asarray(cov), np.asarray(bbox), (input_h, input_w))
        for det in image_dets:
            if det.class_index in detections:
                detections[det.class_index].append((det.confidence, image_index, det.box))
        labelled = read_kitti_labels(sample.label)  # names lower-cased
        for channel in channels:
            boxes = [(o.x1, o.y1, o.x2, o.y2) for o in labelled if class_map.get(o.name) == channel]
            gt[channel].append(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale)
    ap50: dict[int, float] = {}
    num_gt: dict[int, int] = {}
    for channel in channels:
        num_gt[channel] = sum(len(b) for b in gt[channel])
        ap50[channel] = coco_ap101(coco_match(detections[channel], gt[channel]), num_gt[channel])
    return ReferenceResult(
        ap50=ap50,
        num_gt=num_gt,
        num_detections={c: len(d) for c, d in detections.items()},
        num_images=len(samples),
    )


def tflite_predict_fn(model_path: Path, num_threads: int = 2) -> PredictFn:
    """A predictor running a PeopleNet TFLite file (NHWC float input in [0, 1]) with ai-edge-litert."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = interpreter.get_output_details()
    # The two outputs are told apart by channel count: coverage has C channels, bbox 4C.
    outputs = sorted(outputs, key=lambda d: int(d["shape"][-1]))
    cov_index, bbox_index = outputs[0]["index"], outputs[1]["index"]

    def predict(image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        interpreter.set_tensor(input_index, (image.astype(np.float32) / 255.0)[None])
        interpreter.invoke()
        cov = interpreter.get_tensor(cov_index)[0].transpose(2, 0, 1)  # [h, w, C] -> [C, h, w]
        bbox = interpreter.get_tensor(bbox_index)[0].transpose(2, 0, 1)
        return cov, bbox

    return predict
