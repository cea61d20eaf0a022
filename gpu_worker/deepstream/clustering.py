"""Per-class clustering values for nvinfer, from the TAO spec's postprocessing_config when given.

nvinfer's NMS mode (cluster-mode=2) drops cells below `pre-cluster-threshold`, then suppresses
boxes above `nms-iou-threshold`, keeping `topk`. TAO's NMS keeps cells above `coverage_threshold`
and boxes above `nms_confidence_threshold`, so the stricter of the two becomes the pre-cluster
threshold; `minimum_bounding_box_height` becomes `detected-min-h`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_worker.errors import UserError

DEFAULT_PRE_CLUSTER_THRESHOLD = 0.2  # nvinfer's own default
DEFAULT_NMS_IOU_THRESHOLD = 0.5  # TAO's typical NMS IoU and the value PeopleNet's AP was measured at
DEFAULT_TOPK = 20


@dataclass(frozen=True)
class ClassClustering:
    pre_cluster_threshold: float = DEFAULT_PRE_CLUSTER_THRESHOLD
    nms_iou_threshold: float = DEFAULT_NMS_IOU_THRESHOLD
    topk: int = DEFAULT_TOPK
    detected_min_h: int = 0

    def lines(self) -> list[str]:
        lines = [
            f"pre-cluster-threshold={self.pre_cluster_threshold:g}",
            f"nms-iou-threshold={self.nms_iou_threshold:g}",
            f"topk={self.topk}",
        ]
        if self.detected_min_h > 0:
            lines.append(f"detected-min-h={self.detected_min_h}")
        return lines


def clustering_from_spec(spec_path: Path, classes: list[str]) -> dict[int, ClassClustering]:
    """Class index (channel order) -> values; classes the spec does not mention get the defaults."""
    from google.protobuf import text_format

    from gpu_worker.specs.proto import experiment_pb2

    experiment = experiment_pb2.Experiment()
    try:
        text_format.Parse(spec_path.read_text(), experiment, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise UserError(f"{spec_path}: {exc}; fix the spec or leave it out to use default clustering") from exc
    configs = experiment.postprocessing_config.target_class_config
    result: dict[int, ClassClustering] = {}
    lowered = [c.lower() for c in classes]
    for name, value in configs.items():
        if name.lower() not in lowered:
            continue  # a class the model does not output (e.g. mapped away)
        cfg = value.clustering_config
        threshold = max(cfg.coverage_threshold, cfg.nms_confidence_threshold)
        result[lowered.index(name.lower())] = ClassClustering(
            pre_cluster_threshold=threshold if threshold > 0 else DEFAULT_PRE_CLUSTER_THRESHOLD,
            nms_iou_threshold=cfg.nms_iou_threshold if cfg.nms_iou_threshold > 0 else DEFAULT_NMS_IOU_THRESHOLD,
            detected_min_h=max(0, int(cfg.minimum_bounding_box_height)),
        )
    return {i: result.get(i, ClassClustering()) for i in range(len(classes))}
