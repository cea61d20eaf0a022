"""`quantization_aware_finetune`: a short QAT run from a trained float model, so its INT8 export keeps fp32 AP.

The spec is copied with `training_config.enable_qat: true`, the given epochs and a constant learning
rate (a converged model only has to adapt to the quantisation noise; the fine-tune's peak rate would
move it away from its optimum first). Distilling from the float model (`teacher=` the same file)
gives every cell a target, which the few boxes of a small data set do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from gpu_worker.errors import UserError
from gpu_worker.training.train import QAT_CALIBRATION_IMAGES, TrainResult, _load_spec, train

DEFAULT_QAT_LR = 1e-5


def qat_spec(spec: Any, epochs: int, learning_rate: float | None = DEFAULT_QAT_LR) -> Any:
    """A copy of the spec with QAT on, `epochs` epochs and (unless None) a constant learning rate."""
    if epochs < 1:
        raise UserError(f"QAT epochs must be >= 1, got {epochs}")
    copy = type(spec)()
    copy.CopyFrom(spec)
    copy.training_config.enable_qat = True
    copy.training_config.num_epochs = epochs
    if learning_rate is not None:
        if learning_rate <= 0:
            raise UserError(f"QAT learning rate must be > 0, got {learning_rate}")
        schedule = copy.training_config.learning_rate.soft_start_annealing_schedule
        schedule.min_learning_rate = schedule.max_learning_rate = learning_rate
    return copy


def quantization_aware_finetune(
    model_path: str | Path,
    spec: Any,
    results_dir: str | Path,
    *,
    epochs: int,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    teacher: Path | None = None,
    distill_weight: float = 0.0,
    calibration_images: int = QAT_CALIBRATION_IMAGES,
    learning_rate: float | None = DEFAULT_QAT_LR,
    resume: bool = False,
    amp: bool = False,
    hint_weight: float = 0.0,
) -> TrainResult:
    """QAT of the model file `model_path` per `spec` (path or Experiment) into `results_dir/model.pt`.

    The result's model file holds the float weights (batch norm folded) and the activation amax in its
    metadata; `export/int8.py::export_int8` writes the QDQ ONNX with those scales.
    `amp` False by default: under bf16 autocast the conv would see the int8 grid values rounded to 8
    mantissa bits (up to 1/4 step at 127), not the grid TensorRT computes with.
    `hint_weight` > 0 also pulls every quantised conv unit to the float teacher's (training/hints.py).
    """
    with full_float32():
        return train(
            qat_spec(_load_spec(spec), epochs, learning_rate),
            results_dir,
            resume=resume,
            base_model=Path(model_path),
            device=device,
            cache_dir=cache_dir,
            teacher=teacher,
            distill_weight=distill_weight,
            hint_weight=hint_weight if teacher is not None else 0.0,
            qat_calibration_images=calibration_images,
            amp=amp,
        )


@contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off while QAT runs: its 10-bit mantissa would blur the int8 grid just as bf16 does."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
