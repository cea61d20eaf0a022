"""`evaluate_model`: AP of a model (`.pt`, `.onnx` fp32 or INT8 Q/DQ, `.tflite`, in memory) on a KITTI split.

The spec decides everything TAO's `detectnet_v2 evaluate` takes from it: the classes (channel order
and `target_class_mapping`), the input size, post-processing per class and the evaluation settings
(IoU per class, box filters, AP mode). Images are letterboxed as in training; ground truth is scaled
into the same frame and clipped to it. Data: the spec's validation split (`validation_data_source`, or
`validation_fold` as the training data cache splits it), or any KITTI folder given as `kitti_dir`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gpu_worker.detection.metrics import EvalMetrics, EvalSettings, GroundTruth, evaluate_detections
from gpu_worker.detection.postprocess import Detection, PostProcessor
from gpu_worker.errors import UserError

if TYPE_CHECKING:
    from gpu_worker.detection.model import DetectNetV2
    from gpu_worker.training.kitti import KittiSample
    from gpu_worker.training.predictors import Predictor

Progress = Callable[[int, int], None]  # (images done, total)
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class EvalResult:
    metrics: EvalMetrics
    metrics_path: Path | None
    model: str
    data: str
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return self.metrics.to_dict()


@dataclass(frozen=True)
class LoadedImage:
    image: np.ndarray  # uint8 [H, W, 3], letterboxed
    truth: GroundTruth  # boxes in network-input pixels
    content_hw: tuple[int, int]  # the image inside the letterbox, without padding


def evaluation_samples(spec: Any, kitti_dir: Path | None = None) -> tuple[list[KittiSample], str]:
    """The samples to evaluate and a description of where they come from."""
    from gpu_worker.training.dataset import select_splits
    from gpu_worker.training.kitti import list_kitti_samples

    if kitti_dir is not None:
        return list_kitti_samples(Path(kitti_dir), spec.dataset_config.image_extension), str(kitti_dir)
    _, val = select_splits(spec)
    if not val:
        raise UserError(
            "the spec defines no validation data (dataset_config.validation_data_source or validation_fold); "
            "add one or pass a KITTI folder to evaluate on (--data DIR)"
        )
    return [item.sample for item in val], "spec validation split"


def load_sample(sample: KittiSample, spec: Any, class_names: Sequence[str], input_hw: tuple[int, int]) -> LoadedImage:
    """Letterbox one image and map its labels to class indices in the network frame (others dropped)."""
    from gpu_worker.specs.info import class_mapping
    from gpu_worker.training.kitti import read_kitti_labels
    from gpu_worker.training.letterbox import image_size, letterbox_geometry, load_image_letterboxed

    height, width = input_hw
    image, scale = load_image_letterboxed(sample.image, width, height)
    geometry = letterbox_geometry(*image_size(sample.image), width, height)
    mapping = class_mapping(spec)
    index = {name: i for i, name in enumerate(class_names)}
    boxes, classes = [], []
    for obj in read_kitti_labels(sample.label):
        target = mapping.get(obj.name)
        if target is None or target not in index:
            continue
        x1, x2 = (min(max(v * scale, 0.0), width) for v in (obj.x1, obj.x2))
        y1, y2 = (min(max(v * scale, 0.0), height) for v in (obj.y1, obj.y2))
        if x2 > x1 and y2 > y1:
            boxes.append((x1, y1, x2, y2))
            classes.append(index[target])
    return LoadedImage(image, GroundTruth.from_lists(boxes, classes), (geometry.new_h, geometry.new_w))


def _batches(
    samples: Sequence[KittiSample], spec: Any, class_names: Sequence[str], input_hw: tuple[int, int], size: int
) -> Iterator[list[LoadedImage]]:
    # Decoding JPEGs dominates on CPU; a small pool overlaps it with inference (PIL releases the GIL).
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = pool.map(lambda s: load_sample(s, spec, class_names, input_hw), samples)
        batch: list[LoadedImage] = []
        for item in loaded:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def _check_compatible(predictor: Predictor, class_names: Sequence[str], input_hw: tuple[int, int], model: str) -> None:
    if [c.lower() for c in predictor.classes] != [c.lower() for c in class_names]:
        raise UserError(
            f"{model} predicts classes {list(predictor.classes)} but the spec's "
            f"cost_function_config.target_classes are {list(class_names)}; they must match in order"
        )
    if tuple(predictor.input_hw) != tuple(input_hw):
        raise UserError(
            f"{model} takes {predictor.input_hw[1]}x{predictor.input_hw[0]} images but the spec's "
            f"augmentation_config.preprocessing says {input_hw[1]}x{input_hw[0]}; use the training spec"
        )


def run_detection(
    predictor: Predictor,
    samples: Sequence[KittiSample],
    spec: Any,
    class_names: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> tuple[list[list[Detection]], list[GroundTruth]]:
    """Detections (spec post-processing, network-input pixels) and ground truth, one entry per sample.

    Boxes are clipped to the letterboxed content: cells over the padding cannot produce detections.
    """
    post = PostProcessor.from_spec(spec, class_names)
    detections: list[list[Detection]] = []
    truths: list[GroundTruth] = []
    for batch in _batches(samples, spec, class_names, predictor.input_hw, batch_size):
        cov, bbox = predictor.predict(np.stack([item.image for item in batch]))
        detections.extend(post.batch(cov, bbox, sizes=[item.content_hw for item in batch]))
        truths.extend(item.truth for item in batch)
        if progress is not None:
            progress(len(truths), len(samples))
    return detections, truths


def evaluate_model(
    model: str | Path | DetectNetV2 | Predictor,
    spec: Any,
    kitti_dir: str | Path | None = None,
    device: str = "auto",
    *,
    out_path: str | Path | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate per the spec (a path or a parsed Experiment); writes `out_path` (metrics.json) if given."""
    from gpu_worker.detection.model import DetectNetV2
    from gpu_worker.specs.info import input_size, target_class_names
    from gpu_worker.training.predictors import Predictor, TorchPredictor, open_predictor

    if isinstance(spec, str | Path):
        from gpu_worker.specs import load_experiment_spec

        spec = load_experiment_spec(Path(spec))
    class_names = target_class_names(spec)
    width, height = input_size(spec)
    predictor: Predictor
    if isinstance(model, Predictor):
        predictor, label = model, type(model).__name__
    elif isinstance(model, DetectNetV2):
        predictor, label = TorchPredictor(model, tuple(class_names), (height, width), device), "in-memory model"
    else:
        predictor, label = open_predictor(model, device, fallback_classes=class_names), str(model)
    _check_compatible(predictor, class_names, (height, width), label)
    samples, data = evaluation_samples(spec, Path(kitti_dir) if kitti_dir is not None else None)
    size = batch_size or int(spec.training_config.batch_size_per_gpu) or DEFAULT_BATCH_SIZE
    started = time.perf_counter()
    detections, truths = run_detection(predictor, samples, spec, class_names, size, progress)
    metrics = evaluate_detections(detections, truths, class_names, EvalSettings.from_spec(spec, class_names))
    seconds = time.perf_counter() - started
    written = None
    if out_path is not None:
        written = metrics.write_json(Path(out_path), extra={"model": label, "data": data, "seconds": round(seconds, 3)})
    return EvalResult(metrics, written, label, data, seconds)
