"""One training step, one epoch, and evaluation of a DetectNet_v2 model.

The step never synchronises with the GPU: a non-finite loss is detected on the device and handed to
fused Adam as `found_inf`, which then skips the update (as AMP's GradScaler does); the host looks at
the counters only when it logs. bf16 autocast and channels_last apply on CUDA.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gpu_worker.detection.losses import DetectNetLoss, regularization
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.detection.rasterizer import RasterizerConfig, Targets, rasterize
from gpu_worker.errors import PermanentJobError
from gpu_worker.training.data import Batch
from gpu_worker.training.distill import distillation_components
from gpu_worker.training.hints import FeatureHints
from gpu_worker.training.qat import optimizer_groups
from gpu_worker.training.schedule import SoftStartAnnealing

# (epoch, batch index in epoch, batches per epoch, mean loss since last log, images/s since last log)
LogFn = Callable[[int, int, int, float, float], None]


class NonFiniteLossError(PermanentJobError):
    """Training produced NaN/inf losses for too many steps in a row (diverged)."""


@dataclass(frozen=True)
class StepOptions:
    amp: bool = False  # bf16 autocast
    channels_last: bool = False
    regularizer: str = "NO_REG"
    regularizer_weight: float = 0.0
    max_nonfinite_in_a_row: int = 20
    log_every: int = 10
    distill_weight: float = 0.0  # weight of the distillation cost when the Trainer has a teacher
    hint_weight: float = 0.0  # weight of the feature-hint cost when the Trainer has hints


@dataclass
class EpochStats:
    epoch: int
    loss: float  # mean total loss over the finite steps
    cov_loss: float  # mean unweighted coverage cost (all classes)
    bbox_loss: float
    steps: int
    nonfinite_steps: int
    images: int
    seconds: float
    learning_rate: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "cov_loss": self.cov_loss,
            "bbox_loss": self.bbox_loss,
            "steps": self.steps,
            "nonfinite_steps": self.nonfinite_steps,
            "images_per_second": self.images_per_second,
            "learning_rate": self.learning_rate,
        }


def make_optimizer(model: DetectNetV2, lr: float, eps: float, beta1: float, beta2: float) -> torch.optim.Adam:
    """Adam over the trainable parameters; a group's `lr_scale` multiplies the schedule (QAT's amax)."""
    return torch.optim.Adam(optimizer_groups(model), lr=lr, betas=(beta1, beta2), eps=eps, fused=True)


def _pack_bn_stats(model: DetectNetV2) -> tuple[Tensor | None, Tensor]:
    """Re-point every batch-norm running mean/var at a slice of one flat tensor (one copy backs them up)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None]
    if not norms:
        return None, torch.empty(0)
    flat = torch.cat([t for m in norms for t in (m.running_mean, m.running_var)])  # type: ignore[misc]
    offset = 0
    for m in norms:
        for name in ("running_mean", "running_var"):
            size = m.num_features
            m._buffers[name] = flat[offset : offset + size]
            offset += size
    return flat, flat.clone()


class Trainer:
    """Owns the per-step work: targets, forward, loss, backward, guarded optimiser step."""

    def __init__(
        self,
        model: DetectNetV2,
        optimizer: torch.optim.Optimizer,
        loss_fn: DetectNetLoss,
        raster: RasterizerConfig,
        schedule: SoftStartAnnealing,
        total_steps: int,
        device: torch.device,
        options: StepOptions,
        forward: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
        teacher: DetectNetV2 | None = None,  # frozen, eval mode: distilled from (training/distill.py)
        hints: FeatureHints | None = None,  # conv-by-conv hints from the teacher (training/hints.py)
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.raster = raster
        self.schedule = schedule
        self.total_steps = max(total_steps, 1)
        self.device = device
        self.options = options
        self.forward = forward if forward is not None else model
        self.teacher = teacher
        self.hints = hints
        self.step = 0
        self.reg_params = [m.weight for _, m in model.conv_layers() if m.weight.requires_grad]
        self._streak = torch.zeros((), device=device)
        self._bad_total = torch.zeros((), device=device)
        self._bn_stats, self._bn_backup = _pack_bn_stats(model)
        self._output_hw: dict[tuple[int, int], tuple[int, int]] = {}

    @property
    def learning_rate(self) -> float:
        return self.schedule.at_step(self.step, self.total_steps)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.options.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def output_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """The model's output grid for an input size: as seen in a step, else stride 16 rounding up (every
        conv pads k // 2, so each stride-2 layer gives ceil(n / 2)); a wrong guess is caught in the step."""
        seen = self._output_hw.get(input_hw)
        return seen if seen is not None else (-(-input_hw[0] // 16), -(-input_hw[1] // 16))

    def targets_for(self, batch: Batch) -> Batch:
        """`batch` with its rasterised targets attached: a `BatchStream` runs this ahead of the step, on
        its side stream, so the rasteriser's many small kernels overlap the previous step's compute."""
        input_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
        output_hw = self.output_hw(input_hw)
        batch.targets = rasterize(batch.boxes, batch.classes, self.raster, output_hw, input_hw, self.device)
        return batch

    def train_step(
        self,
        images: Tensor,
        boxes: Sequence[Tensor],
        classes: Sequence[Tensor],
        weights: Tensor | None,
        targets: Targets | None = None,
    ) -> Tensor:
        """One optimiser step; returns [3] detached (total, cov, bbox) losses, NaN when the step was skipped.
        With a teacher, total includes the weighted distillation cost; cov and bbox are the ground truth's.

        `targets`: precomputed `rasterize` output for these boxes (`targets_for`); rasterised here if None.
        """
        if self.options.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        height, width = images.shape[-2:]
        if self._bn_stats is not None:
            self._bn_backup.copy_(self._bn_stats)
        with self._autocast():
            cov, bbox = self.forward(images)
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_cov, teacher_bbox = self.teacher(images)
        output_hw = (int(cov.shape[-2]), int(cov.shape[-1]))
        self._output_hw[(int(height), int(width))] = output_hw
        if targets is None or tuple(targets.cov.shape[-2:]) != output_hw:
            targets = rasterize(boxes, classes, self.raster, output_hw, (height, width), self.device)
        progress = self.step / self.total_steps
        out = self.loss_fn(cov, bbox, targets, progress, image_weights=weights)
        loss = out.total
        if self.teacher is not None:
            distill = distillation_components(cov, bbox, teacher_cov, teacher_bbox)
            weighted = distill * self.loss_fn.objective_weights(progress) * self.loss_fn.class_weights[:, None]
            loss = loss + self.options.distill_weight * weighted.sum()
        if self.hints is not None:
            loss = loss + self.options.hint_weight * self.hints.loss()
        reg = regularization(self.reg_params, self.options.regularizer, self.options.regularizer_weight)
        if reg is not None:
            loss = loss + reg
        bad = (~torch.isfinite(loss)).float()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Fused Adam skips the whole update (moments and step count too) when found_inf is 1.
        self.optimizer.found_inf = bad  # type: ignore[attr-defined]
        self.optimizer.step()
        if self._bn_stats is not None:  # a skipped step must not leave NaN batch statistics behind either
            self._bn_stats.copy_(torch.where(bad > 0, self._bn_backup, self._bn_stats))
        self.step += 1
        self._streak = (self._streak + bad) * bad
        self._bad_total = self._bad_total + bad
        parts = out.components.detach().sum(dim=0)
        return torch.stack([loss.detach(), parts[0], parts[1]])

    def check_finite(self) -> int:
        """Host check of the device counters (syncs); raises after too many non-finite steps in a row."""
        streak = int(self._streak.item())
        if streak >= self.options.max_nonfinite_in_a_row:
            raise NonFiniteLossError(
                f"training diverged: the loss was NaN/inf for {streak} steps in a row (step {self.step}); "
                "lower training_config.learning_rate max_learning_rate or check the labels"
            )
        return int(self._bad_total.item())

    def train_one_epoch(
        self, loader: Iterable[Batch], epoch: int, steps_per_epoch: int, log: LogFn | None = None
    ) -> EpochStats:
        self.model.train()
        start = time.perf_counter()
        bad_before = int(self._bad_total.item())
        sums = torch.zeros(3, device=self.device)
        finite_steps = torch.zeros((), device=self.device)
        window_start, window_images, window_sum, window_n = start, 0, torch.zeros((), device=self.device), 0
        images = steps = 0
        for index, batch in enumerate(loader):
            losses = self.train_step(batch.images, batch.boxes, batch.classes, batch.weights, batch.targets)
            ok = torch.isfinite(losses[0])
            sums += torch.where(ok, losses, torch.zeros_like(losses))
            finite_steps += ok.float()
            window_sum = window_sum + torch.where(ok, losses[0], torch.zeros_like(losses[0]))
            images += len(batch)
            window_images += len(batch)
            window_n += 1
            steps += 1
            if (index + 1) % self.options.log_every == 0 or index + 1 == steps_per_epoch:
                self.check_finite()
                now = time.perf_counter()
                if log is not None:
                    log(
                        epoch,
                        index + 1,
                        steps_per_epoch,
                        float(window_sum.item()) / window_n,
                        window_images / (now - window_start),
                    )
                window_start, window_images, window_sum, window_n = now, 0, torch.zeros((), device=self.device), 0
        bad_total = self.check_finite()
        seconds = time.perf_counter() - start
        n = max(float(finite_steps.item()), 1.0)
        mean = (sums / n).tolist()
        return EpochStats(
            epoch=epoch,
            loss=mean[0],
            cov_loss=mean[1],
            bbox_loss=mean[2],
            steps=steps,
            nonfinite_steps=bad_total - bad_before,
            images=images,
            seconds=seconds,
            learning_rate=self.learning_rate,
        )


@torch.no_grad()
def predict(
    model: DetectNetV2, loader: Iterable[Batch], device: torch.device, amp: bool = False
) -> Iterable[tuple[Batch, np.ndarray, np.ndarray]]:
    """(batch, cov [B, C, h, w], bbox [B, 4C, h, w]) as numpy, batch by batch, in eval mode."""
    model.eval()
    for batch in loader:
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with ctx:
            cov, bbox = model(batch.images)
        yield batch, cov.float().cpu().numpy(), bbox.float().cpu().numpy()


def evaluate(
    model: DetectNetV2,
    loader: Iterable[Batch],
    spec: Any,
    class_names: Sequence[str],
    device: torch.device,
    amp: bool = False,
) -> Any:
    """AP per class on a split with the spec's post-processing and evaluation settings (EvalMetrics)."""
    from gpu_worker.detection.metrics import EvalSettings, GroundTruth, evaluate_detections
    from gpu_worker.detection.postprocess import PostProcessor

    post = PostProcessor.from_spec(spec, class_names)
    settings = EvalSettings.from_spec(spec, class_names)
    detections: list[Any] = []
    truths: list[GroundTruth] = []
    for batch, cov, bbox in predict(model, loader, device, amp):
        image_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
        detections.extend(post.batch(cov, bbox, image_hw))
        truths.extend(
            GroundTruth(b.detach().cpu().numpy().astype(np.float64), c.detach().cpu().numpy().astype(np.intp))
            for b, c in zip(batch.boxes, batch.classes, strict=True)
        )
    return evaluate_detections(detections, truths, class_names, settings)
