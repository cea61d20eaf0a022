"""Parity of an imported model with the TFLite file it came from, on real images.

The TFLite PeopleNet is dynamic-range quantised: int8 weights, and the runtime quantises
activations to int8 on the fly inside each conv, while our import runs the dequantised weights in
float32. Outputs therefore differ by a small quantisation noise; this module measures it on the
coverage maps, on the boxes of the cells that matter (coverage > threshold) and on the decoded,
NMS-ed detections of the reference protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpu_worker.detection.model import DetectNetV2

# Tolerances, from measurements on coco128-kitti/val (bench/results/quality.json "parity"): coverage
# differs by at most ~0.07 in a handful of cells (mean ~6e-5). Detections whose confidence sits near
# the 0.1 cut may appear on one side only, so box agreement is required of confident detections.
COVERAGE_TOLERANCE = 0.1
DETECTION_IOU_TOLERANCE = 0.8
CONFIDENT = 0.2  # reference detections at least this confident must be matched


@dataclass(frozen=True)
class ParityReport:
    num_images: int
    coverage_max_abs: float  # over every cell and class
    coverage_mean_abs: float
    bbox_max_abs_px: float  # decoded box edges, at cells where the TFLite coverage > threshold
    bbox_mean_abs_px: float
    detections_reference: int  # TFLite detections after the reference post-processing
    detections_imported: int
    detections_matched: int  # reference detections with a same-class imported one at IoU >= tolerance
    detection_min_iou: float  # worst best-IoU of a reference detection (1.0 when there are none)
    confident_min_iou: float  # the same over reference detections with confidence >= CONFIDENT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def within_tolerance(self) -> bool:
        return self.coverage_max_abs <= COVERAGE_TOLERANCE and self.confident_min_iou >= DETECTION_IOU_TOLERANCE


def torch_predict_fn(model: DetectNetV2) -> Any:
    """A reference-protocol predictor (uint8 [H, W, 3] -> cov, bbox numpy) running our model on CPU."""
    import torch

    model = model.eval()

    def predict(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0)[None]
        with torch.inference_mode():
            cov, bbox = model(x)
        return cov[0].numpy(), bbox[0].numpy()

    return predict


def compare_with_tflite(
    tflite_path: Path, model: DetectNetV2, images: Sequence[Path], coverage_threshold: float = 0.1
) -> ParityReport:
    from gpu_worker.detection.postprocess import PostProcessor, decode_image, pairwise_iou
    from gpu_worker.detection.reference_eval import REFERENCE_CONFIG, tflite_predict_fn
    from gpu_worker.training.letterbox import load_image_letterboxed

    reference = tflite_predict_fn(tflite_path)
    ours = torch_predict_fn(model)
    post = PostProcessor.uniform(tuple(str(c) for c in range(model.num_classes)), REFERENCE_CONFIG)
    h, w = 544, 960
    cov_max = cov_sum = box_max = box_sum = 0.0
    cov_cells = box_cells = 0
    n_ref = n_ours = n_matched = 0
    min_iou = confident_min_iou = 1.0
    for path in images:
        image, _ = load_image_letterboxed(path, w, h)
        cov_r, bbox_r = reference(image)
        cov_o, bbox_o = ours(image)
        diff = np.abs(cov_r - cov_o)
        cov_max, cov_sum, cov_cells = (
            max(cov_max, float(diff.max())),
            cov_sum + float(diff.sum()),
            cov_cells + diff.size,
        )
        mask = cov_r > coverage_threshold  # [C, h, w]
        if mask.any():
            edges = np.abs(decode_image(bbox_r, (h, w)) - decode_image(bbox_o, (h, w)))  # [C, h, w, 4]
            picked = edges[mask]
            box_max, box_sum, box_cells = (
                max(box_max, float(picked.max())),
                box_sum + float(picked.sum()),
                box_cells + picked.size,
            )
        dets_r, dets_o = post(cov_r, bbox_r, (h, w)), post(cov_o, bbox_o, (h, w))
        n_ref, n_ours = n_ref + len(dets_r), n_ours + len(dets_o)
        for det in dets_r:
            same = [d.box for d in dets_o if d.class_index == det.class_index]
            best = float(pairwise_iou(np.asarray([det.box]), np.asarray(same)).max()) if same else 0.0
            min_iou = min(min_iou, best)
            if det.confidence >= CONFIDENT:
                confident_min_iou = min(confident_min_iou, best)
            n_matched += best >= DETECTION_IOU_TOLERANCE
    return ParityReport(
        num_images=len(images),
        coverage_max_abs=cov_max,
        coverage_mean_abs=cov_sum / max(cov_cells, 1),
        bbox_max_abs_px=box_max,
        bbox_mean_abs_px=box_sum / max(box_cells, 1),
        detections_reference=n_ref,
        detections_imported=n_ours,
        detections_matched=n_matched,
        detection_min_iou=min_iou,
        confident_min_iou=confident_min_iou,
    )
