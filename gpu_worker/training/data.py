"""Training data API: prepared KITTI cache -> batches on the device, augmented there.

    from gpu_worker.training.data import AugmentConfig, BatchLoader, prepare_cache

    prepared = prepare_cache(spec, cache_dir)          # decode + letterbox every image once
    loader = BatchLoader(prepared.train, batch_size=8, device="cuda", shuffle=True,
                         augment=AugmentConfig.from_spec(spec), seed=spec.random_seed, drop_last=True)
    for epoch in range(start_epoch, num_epochs):
        loader.set_epoch(epoch)                        # same seed + epoch -> same batches (resume)
        for batch in loader:                           # Batch(images, boxes, classes, paths, scales, weights)
            ...

Images are letterboxed (scaled to fit, zero padding right/bottom, see `letterbox.py`); boxes are
(x1, y1, x2, y2) in network-input pixels; `box_original = box / scale`. Reading a batch is a memmap
gather on a background thread, which also draws the augmentation and moves the boxes (tiny, on the
host); the device gets pinned asynchronous copies and runs the image side in batch (`augment.py`), so
producing a batch never synchronises the host with the GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from gpu_worker.detection.rasterizer import Targets
from gpu_worker.training.augment import AugmentConfig, AugmentPlan, apply_plan, plan_augment
from gpu_worker.training.cache import PreparedData, PreparedSplit, open_split, prepare_cache
from gpu_worker.training.letterbox import load_image_letterboxed

__all__ = [
    "AugmentConfig",
    "Batch",
    "BatchLoader",
    "PreparedData",
    "PreparedSplit",
    "load_image_letterboxed",
    "open_split",
    "prepare_cache",
]


@dataclass
class Batch:
    """One batch on the device.

    images: [B, 3, H, W] float32 RGB in [0, 1] (pixel / 255, as PeopleNet expects).
    boxes: per image [Ni, 4] float32 (x1, y1, x2, y2) in pixels of the H x W network input.
    classes: per image [Ni] int64, index into the spec's `cost_function_config.target_classes`.
    paths: original image files.
    scales: [B] float32 letterbox scale original -> network (divide a box by it to map it back).
    weights: [B] float32 loss weight of each image (its data source's `source_weight`, default 1).
    """

    images: torch.Tensor
    boxes: list[torch.Tensor]
    classes: list[torch.Tensor]
    paths: list[str]
    scales: torch.Tensor
    weights: torch.Tensor
    targets: Targets | None = None  # rasterised ahead of the step when a producer attaches them

    def __len__(self) -> int:
        return len(self.paths)


def _to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> contiguous float32 [B, 3, H, W] in [0, 1] (one copy, one in-place scale)."""
    b, h, w, c = images.shape
    out = torch.empty((b, c, h, w), dtype=torch.float32, device=images.device)
    out.copy_(images.permute(0, 3, 1, 2))
    return out.mul_(1.0 / 255.0)


@dataclass
class _HostBatch:
    indices: np.ndarray
    images: torch.Tensor  # [B, H, W, 3] uint8 (pinned for CUDA), or float [B, 3, H, W] for the CPU
    boxes: torch.Tensor  # [M, 4] float32 (already augmented when `plan` is set)
    classes: torch.Tensor  # [M] int64
    counts: list[int]
    scales: torch.Tensor  # [B] float32
    weights: torch.Tensor  # [B] float32
    plan: AugmentPlan | None  # the image side of the augmentation, still to apply on the device


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class BatchLoader:
    """Iterates a prepared split in batches of `Batch` on `device`.

    shuffle: a new order every epoch, drawn from (seed, epoch) only, so `set_epoch(e)` replays epoch e
    exactly (also mid-epoch: `set_epoch(e, start_batch=k)` skips the first k batches).
    augment: `AugmentConfig` (train) or None (validation: no augmentation).
    drop_last: drop a final batch smaller than `batch_size`.
    """

    def __init__(
        self,
        split: PreparedSplit,
        batch_size: int,
        device: str | torch.device = "cpu",
        shuffle: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        drop_last: bool = False,
        *,
        prefetch: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split = split
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.epoch = 0
        self.start_batch = 0
        self._content_sizes = torch.from_numpy(split.content_sizes())
        self._pin = self.device.type == "cuda"

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch whose order (and augmentation draws) the next iteration replays."""
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> np.ndarray:
        """Image indices of the current epoch, in iteration order."""
        n = len(self.split)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(_seed(self.seed, self.epoch)).permutation(n)

    def _gather(self, indices: np.ndarray, epoch: int, batch_index: int) -> _HostBatch:
        images = torch.from_numpy(np.ascontiguousarray(self.split.images[indices]))
        if self.device.type == "cpu":
            # Training on the CPU: convert here, on the prefetch thread, overlapping the training step.
            images = _to_float_nchw(images)
        per_image = [self.split.targets(int(i)) for i in indices]
        counts = [len(b) for b, _ in per_image]
        boxes = torch.from_numpy(np.concatenate([b for b, _ in per_image]).reshape(-1, 4).astype(np.float32))
        classes = torch.from_numpy(np.concatenate([c for _, c in per_image]).astype(np.int64))
        scales = torch.from_numpy(np.ascontiguousarray(self.split.scales[indices], dtype=np.float32))
        weights = torch.from_numpy(np.ascontiguousarray(self.split.weights[indices], dtype=np.float32))
        plan = None
        if self.augment is not None:
            # Draws depend on (seed, epoch, batch) only; boxes move here, so their kept counts are host-side.
            generator = torch.Generator().manual_seed(_seed(self.seed, epoch, batch_index, 1))
            content = self._content_sizes[torch.from_numpy(indices)]
            hw = (self.split.height, self.split.width)
            plan = plan_augment(boxes, classes, counts, content, hw, self.augment, generator)
            boxes, classes, counts = plan.boxes, plan.classes, plan.counts
        if self._pin:
            images, boxes, classes = images.pin_memory(), boxes.pin_memory(), classes.pin_memory()
            scales, weights = scales.pin_memory(), weights.pin_memory()
            plan = plan.pin_memory() if plan is not None else None
        return _HostBatch(indices, images, boxes, classes, counts, scales, weights, plan)

    def _to_device(self, host: _HostBatch) -> Batch:
        """Asynchronous copies (pinned memory) and device ops only: never waits for the GPU."""
        device = self.device
        if host.images.dtype == torch.uint8:  # uint8 over the bus (4x less than float), convert there
            images = _to_float_nchw(host.images.to(device, non_blocking=True))
        else:
            images = host.images.to(device)
        if host.plan is not None:
            images = apply_plan(images, host.plan)
        boxes = host.boxes.to(device, non_blocking=True).split(host.counts)
        classes = host.classes.to(device, non_blocking=True).split(host.counts)
        return Batch(
            images=images,
            boxes=list(boxes),
            classes=list(classes),
            paths=[self.split.paths[int(i)] for i in host.indices],
            scales=host.scales.to(device, non_blocking=True),
            weights=host.weights.to(device, non_blocking=True),
        )

    def __iter__(self) -> Iterator[Batch]:
        order = self.order()
        bounds = [
            (b, order[b * self.batch_size : (b + 1) * self.batch_size]) for b in range(self.start_batch, len(self))
        ]
        epoch = self.epoch
        if not self.prefetch:
            for b, indices in bounds:
                yield self._to_device(self._gather(indices, epoch, b))
            return
        # One batch ahead on a thread: the memmap gather, box augmentation and pinning overlap the step.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[_HostBatch] | None = (
                pool.submit(self._gather, bounds[0][1], epoch, bounds[0][0]) if bounds else None
            )
            for position, _ in enumerate(bounds):
                assert pending is not None
                host = pending.result()
                nxt = position + 1
                pending = (
                    pool.submit(self._gather, bounds[nxt][1], epoch, bounds[nxt][0]) if nxt < len(bounds) else None
                )
                yield self._to_device(host)
