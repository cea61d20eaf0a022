"""Predictors: one interface over a PyTorch model and an ONNX file (fp32 or INT8 Q/DQ, onnxruntime).

Evaluation, inference and the reference protocol run every model through `Predictor.predict`, so a
trained `.pt` and its exported `.onnx` are measured by the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gpu_worker.errors import UserError

if TYPE_CHECKING:
    from gpu_worker.detection.model import DetectNetV2

Outputs = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


class Predictor(ABC):
    """Runs a DetectNet_v2 network on letterboxed images.

    `predict(images)`: uint8 RGB [N, H, W, 3] with (H, W) = `input_hw` -> (cov [N, C, H/16, W/16],
    bbox [N, 4C, H/16, W/16]) float32 numpy; channel c is `classes[c]`.
    """

    classes: tuple[str, ...]
    input_hw: tuple[int, int]

    @abstractmethod
    def predict(self, images: npt.NDArray[np.uint8]) -> Outputs: ...

    def predict_one(self, image: npt.NDArray[np.uint8]) -> Outputs:
        """One image [H, W, 3] -> (cov [C, h, w], bbox [4C, h, w]): the reference protocol's callable."""
        cov, bbox = self.predict(image[None])
        return cov[0], bbox[0]

    def check_images(self, images: npt.NDArray[Any]) -> None:
        if images.ndim != 4 or images.shape[1:] != (*self.input_hw, 3):
            raise ValueError(f"expected images [N, {self.input_hw[0]}, {self.input_hw[1]}, 3], got {images.shape}")


class TorchPredictor(Predictor):
    def __init__(
        self, model: DetectNetV2, classes: tuple[str, ...], input_hw: tuple[int, int], device: str = "cpu"
    ) -> None:
        from gpu_worker.training.train import resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.classes = tuple(classes)
        self.input_hw = input_hw

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> TorchPredictor:
        from gpu_worker.detection.checkpoint import load_model

        model, meta = load_model(path)
        return cls(model, meta.classes, meta.input_hw, device)

    def predict(self, images: npt.NDArray[np.uint8]) -> Outputs:
        import torch

        self.check_images(images)
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # [N, 3, H, W] in [0, 1]
        with torch.inference_mode():
            cov, bbox = self.model(x)
        return cov.float().cpu().numpy(), bbox.float().cpu().numpy()


class TfLitePredictor(Predictor):
    """A DetectNet_v2 TFLite file (NHWC float input in [0, 1], e.g. the PeopleNet reference) via ai-edge-litert."""

    def __init__(self, path: Path, classes: tuple[str, ...] | None = None, num_threads: int = 2) -> None:
        from gpu_worker.detection.reference_eval import tflite_predict_fn

        try:
            self._predict_one, details = tflite_predict_fn(path, num_threads), _tflite_shapes(path)
        except ImportError as exc:
            raise UserError("running .tflite models needs ai-edge-litert (pip install ai-edge-litert)") from exc
        (height, width), num_classes = details
        self.input_hw = (height, width)
        self.classes = classes or tuple(f"class_{i}" for i in range(num_classes))
        if len(self.classes) != num_classes:
            raise UserError(f"{path} has {num_classes} coverage channels, not {len(self.classes)}: {self.classes}")

    def predict(self, images: npt.NDArray[np.uint8]) -> Outputs:
        self.check_images(images)
        outputs = [self._predict_one(image) for image in images]
        return (
            np.stack([o[0] for o in outputs]).astype(np.float32),
            np.stack([o[1] for o in outputs]).astype(np.float32),
        )


def _tflite_shapes(path: Path) -> tuple[tuple[int, int], int]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    _, height, width, _ = (int(v) for v in interpreter.get_input_details()[0]["shape"])
    num_classes = min(int(d["shape"][-1]) for d in interpreter.get_output_details())
    return (height, width), num_classes


def open_predictor(path: str | Path, device: str = "cpu", fallback_classes: Sequence[str] | None = None) -> Predictor:
    """A predictor for a model file: `.onnx` (onnxruntime), `.tflite` (ai-edge-litert), else our `.pt` file.

    `fallback_classes` names the channels of files that carry no class names (no metadata, no labels.txt).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    fallback = tuple(fallback_classes) if fallback_classes is not None else None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from gpu_worker.export.onnx_runner import OnnxPredictor

        return OnnxPredictor(path, device=device, fallback_classes=fallback)
    if suffix == ".tflite":
        from gpu_worker.export.labels import labels_path_for, read_labels

        labels = labels_path_for(path)
        return TfLitePredictor(path, read_labels(labels) if labels.is_file() else fallback)
    return TorchPredictor.from_file(path, device)
