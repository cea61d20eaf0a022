"""Run an exported DetectNet_v2 ONNX file (ours, TAO's or NGC's; fp32 or INT8 Q/DQ) with onnxruntime.

Tensors are found as DeepStream finds them: the single image input, and the outputs whose names
contain `cov` and `bbox`. Class names come from the file's `classes` metadata (our exports), else
from `labels.txt` beside it, else the caller's fallback names, else `class_0`, `class_1`, ...
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gpu_worker.errors import UserError
from gpu_worker.export.labels import labels_path_for, read_labels
from gpu_worker.export.onnx_export import METADATA_CLASSES
from gpu_worker.training.predictors import Outputs, Predictor


class OnnxPredictor(Predictor):
    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        num_threads: int | None = None,
        fallback_classes: tuple[str, ...] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX model {self.path} does not exist")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        available = ort.get_available_providers()
        wanted = ["CUDAExecutionProvider"] if device != "cpu" and "CUDAExecutionProvider" in available else []
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=[*wanted, "CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise UserError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise UserError(f"{self.path}: expected one image input [N, 3, H, W], found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        _, channels, height, width = inputs[0].shape
        if channels != 3 or not isinstance(height, int) or not isinstance(width, int):
            raise UserError(f"{self.path}: input {self.input_name} has shape {inputs[0].shape}; need [N, 3, H, W]")
        self.input_hw = (height, width)
        batch = inputs[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.cov_name = self._output("cov")
        self.bbox_name = self._output("bbox")
        self.classes = self._classes(fallback_classes)

    def _output(self, substring: str) -> str:
        found = [o.name for o in self.session.get_outputs() if substring in o.name]
        if len(found) != 1:
            names = [o.name for o in self.session.get_outputs()]
            raise UserError(f"{self.path}: expected one output named like '*{substring}*', found {names}")
        return found[0]

    def _classes(self, fallback: tuple[str, ...] | None) -> tuple[str, ...]:
        count = self.session.get_outputs()[[o.name for o in self.session.get_outputs()].index(self.cov_name)].shape[1]
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_CLASSES in meta:
            return tuple(json.loads(meta[METADATA_CLASSES]))
        labels = labels_path_for(self.path)
        if labels.is_file():
            names = read_labels(labels)
            if isinstance(count, int) and len(names) != count:
                raise UserError(f"{labels} lists {len(names)} classes but {self.path} has {count} coverage channels")
            return names
        if fallback is not None and (not isinstance(count, int) or len(fallback) == count):
            return fallback
        if not isinstance(count, int):
            raise UserError(f"{self.path}: no class names (no metadata, no {labels.name}) and no fixed class count")
        return tuple(f"class_{i}" for i in range(count))

    def predict(self, images: npt.NDArray[np.uint8]) -> Outputs:
        self.check_images(images)
        x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0  # [N, 3, H, W]
        step = self.fixed_batch or len(x)
        covs, bboxes = [], []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            pad = step - len(chunk)  # a fixed-batch graph needs full batches
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            cov, bbox = self.session.run([self.cov_name, self.bbox_name], {self.input_name: chunk})
            covs.append(cov[: step - pad])
            bboxes.append(bbox[: step - pad])
        return np.concatenate(covs).astype(np.float32), np.concatenate(bboxes).astype(np.float32)
