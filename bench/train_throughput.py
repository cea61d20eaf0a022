"""Training throughput at 960x544, ResNet-34, bf16: the full step vs the model-only step.

full: what `train` does per step: batch gather from the prepared cache, box augmentation and pinning
(loader thread), host-to-device copies, GPU image augmentation and target rasterisation (BatchStream
thread, side CUDA stream, running ahead), then forward, loss, regulariser, backward, guarded Adam.
model-only: the same model, optimiser and loss on one synthetic batch already on the GPU with its
targets precomputed (forward, loss, backward, Adam); measured before and after the full runs, the
ratio uses their mean. Diagnostics in the same run: `full_targets_in_step` (the previous variant:
rasterisation in the training step), `trainer_step_resident` (Trainer.train_step on a resident batch
with precomputed targets: what the step itself adds to model-only), `producer_only` (the BatchStream
alone, no training).

    python bench/train_throughput.py --data ../shared/data/coco128-kitti --modes eager,compiled \
        --out bench/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench._common import machine, scratch_spec
from gpu_worker.detection.losses import CostConfig, DetectNetLoss
from gpu_worker.detection.rasterizer import RasterizerConfig, rasterize
from gpu_worker.specs.info import target_class_names
from gpu_worker.training.data import AugmentConfig, BatchLoader, prepare_cache
from gpu_worker.training.engine import StepOptions, Trainer, make_optimizer
from gpu_worker.training.schedule import SoftStartAnnealing
from gpu_worker.training.stream import BatchStream
from gpu_worker.training.train import _fresh_model


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_trainer(spec: Any, device: torch.device, steps: int, compile_model: bool) -> Trainer:
    names = target_class_names(spec)
    model = _fresh_model(spec, names).to(device)
    amp = device.type == "cuda"
    if amp:
        model = model.to(memory_format=torch.channels_last)
    schedule = SoftStartAnnealing.from_spec(spec)
    optimizer = make_optimizer(model, schedule.min_lr, 1e-8, 0.9, 0.999)
    loss_fn = DetectNetLoss(CostConfig.from_spec(spec), device)
    options = StepOptions(amp=amp, channels_last=amp, regularizer="L1", regularizer_weight=3e-9, log_every=10**9)
    forward = torch.compile(model) if compile_model else None
    raster = RasterizerConfig.from_spec(spec, names)
    return Trainer(model, optimizer, loss_fn, raster, schedule, steps, device, options, forward=forward)


def full_rate(trainer: Trainer, loader: BatchLoader, warmup_epochs: int, epochs: int, targets_ahead: bool) -> float:
    """Whole epochs through Trainer.train_one_epoch fed by a BatchStream, as `train` runs them
    (`targets_ahead`: the stream rasterises the targets; else the step does, the previous variant)."""
    prepare = trainer.targets_for if targets_ahead else None
    with BatchStream(loader, trainer.device, range(warmup_epochs + epochs), prepare=prepare) as stream:
        for epoch in range(warmup_epochs):
            trainer.train_one_epoch(stream.epoch(epoch), epoch, len(loader))
        _sync()
        start, images = time.perf_counter(), 0
        for epoch in range(warmup_epochs, warmup_epochs + epochs):
            images += trainer.train_one_epoch(stream.epoch(epoch), epoch, len(loader)).images
        _sync()
    return images / (time.perf_counter() - start)


def producer_rate(trainer: Trainer, loader: BatchLoader, epochs: int) -> float:
    """The BatchStream (gather, copies, augmentation, targets) alone: its ceiling on the full rate."""
    with BatchStream(loader, trainer.device, range(epochs + 1), prepare=trainer.targets_for) as stream:
        for _ in stream.epoch(0):
            pass
        _sync()
        start, images = time.perf_counter(), 0
        for epoch in range(1, epochs + 1):
            for batch in stream.epoch(epoch):
                images += len(batch)
        _sync()
    return images / (time.perf_counter() - start)


def _resident(trainer: Trainer, batch_size: int, hw: tuple[int, int], loader: BatchLoader) -> tuple[Any, ...]:
    device = trainer.device
    loader.set_epoch(0)
    real = next(iter(loader))  # realistic boxes, rasterised once
    images = torch.rand(batch_size, 3, *hw, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        cov, _ = trainer.forward(images)
    targets = rasterize(real.boxes, real.classes, trainer.raster, tuple(cov.shape[-2:]), hw, device)
    return images, real, targets


def model_only_rate(
    trainer: Trainer, batch_size: int, hw: tuple[int, int], loader: BatchLoader, warmup: int, steps: int
) -> float:
    device = trainer.device
    images, _, targets = _resident(trainer, batch_size, hw, loader)
    loss_fn, optimizer = trainer.loss_fn, trainer.optimizer
    for i in range(warmup + steps):
        if i == warmup:
            _sync()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            cov, bbox = trainer.forward(images)
        loss = loss_fn(cov, bbox, targets, 0.5).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync()
    return batch_size * steps / (time.perf_counter() - start)


def trainer_step_rate(
    trainer: Trainer, batch_size: int, hw: tuple[int, int], loader: BatchLoader, warmup: int, steps: int
) -> float:
    """Trainer.train_step (regulariser, non-finite guard, lr schedule) on a resident batch and targets."""
    images, real, targets = _resident(trainer, batch_size, hw, loader)
    for i in range(warmup + steps):
        if i == warmup:
            _sync()
            start = time.perf_counter()
        trainer.train_step(images, real.boxes, real.classes, real.weights, targets)
    _sync()
    return batch_size * steps / (time.perf_counter() - start)


def measure(trainer: Trainer, loader: BatchLoader, hw: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    bs, warmup, steps = args.batch_size, args.warmup, args.steps
    epochs, warmup_epochs = max(steps // len(loader), 1), max(-(-warmup // len(loader)), 1)
    before = model_only_rate(trainer, bs, hw, loader, warmup, steps)
    full = full_rate(trainer, loader, warmup_epochs, epochs, targets_ahead=True)
    previous = full_rate(trainer, loader, warmup_epochs, epochs, targets_ahead=False)
    step = trainer_step_rate(trainer, bs, hw, loader, warmup, steps)
    after = model_only_rate(trainer, bs, hw, loader, warmup, steps)
    model_only = (before + after) / 2
    return {
        "full_images_per_s": full,
        "model_only_images_per_s": model_only,
        "full_over_model_only": full / model_only,
        "overhead_ms_per_step": 1000 * bs * (1 / full - 1 / model_only),
        "model_only_before_after": [before, after],
        "full_targets_in_step_images_per_s": previous,
        "full_targets_in_step_over_model_only": previous / model_only,
        "trainer_step_resident_images_per_s": step,
        "producer_only_images_per_s": producer_rate(trainer, loader, epochs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="KITTI root with train/ (and val/)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/peoplenet-bench-cache"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--modes", default="eager", help="comma-separated: eager, compiled (torch.compile)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_throughput.json"))
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    spec = scratch_spec(args.data / "train", None, epochs=10, batch_size=args.batch_size)
    prepared = prepare_cache(spec, args.cache)
    loader = BatchLoader(prepared.train, args.batch_size, device, shuffle=True, augment=AugmentConfig.from_spec(spec),
                         seed=1, drop_last=True)  # fmt: skip
    hw = (prepared.height, prepared.width)
    results: dict[str, object] = {"machine": machine(), "batch_size": args.batch_size, "input_hw": list(hw),
                                  "num_layers": 34, "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
                                  "steps": args.steps, "warmup": args.warmup}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for key in args.modes.split(","):
        if key not in ("eager", "compiled"):
            parser.error(f"--modes: unknown mode {key!r}")
        # One trainer per mode: compiling once; its step count does not change the step's cost.
        trainer = build_trainer(spec, device, 10**6, key == "compiled")
        results[key] = measure(trainer, loader, hw, args)
        print(key, json.dumps(results[key]), flush=True)
        args.out.write_text(json.dumps(results, indent=2))  # keep what is measured if a later mode fails
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
