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
gather on a background thread; augmentation runs on `device` in batch (`augment.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from gpu_worker.training.augment import AugmentConfig, augment_flat
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
    boxes: torch.Tensor  # [M, 4] float32
    classes: torch.Tensor  # [M] int64
    counts: list[int]


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

    def _gather(self, indices: np.ndarray) -> _HostBatch:
        images = torch.from_numpy(np.ascontiguousarray(self.split.images[indices]))
        if self.device.type == "cpu":
            # Training on the CPU: convert here, on the prefetch thread, overlapping the training step.
            images = _to_float_nchw(images)
        per_image = [self.split.targets(int(i)) for i in indices]
        counts = [len(b) for b, _ in per_image]
        boxes = torch.from_numpy(np.concatenate([b for b, _ in per_image]).reshape(-1, 4).astype(np.float32))
        classes = torch.from_numpy(np.concatenate([c for _, c in per_image]).astype(np.int64))
        if self._pin:
            images, boxes, classes = images.pin_memory(), boxes.pin_memory(), classes.pin_memory()
        return _HostBatch(indices, images, boxes, classes, counts)

    def _to_device(self, host: _HostBatch, batch_index: int) -> Batch:
        device = self.device
        if host.images.dtype == torch.uint8:  # uint8 over the bus (4x less than float), convert there
            images = _to_float_nchw(host.images.to(device, non_blocking=True))
        else:
            images = host.images.to(device)
        flat_boxes = host.boxes.to(device, non_blocking=True)
        flat_classes = host.classes.to(device, non_blocking=True)
        if self.augment is not None:
            generator = torch.Generator().manual_seed(_seed(self.seed, self.epoch, batch_index, 1))
            content = self._content_sizes[torch.from_numpy(host.indices)]
            images, boxes, classes = augment_flat(
                images, flat_boxes, flat_classes, host.counts, content, self.augment, generator
            )
        else:
            boxes, classes = list(flat_boxes.split(host.counts)), list(flat_classes.split(host.counts))
        idx = host.indices
        return Batch(
            images=images,
            boxes=boxes,
            classes=classes,
            paths=[self.split.paths[int(i)] for i in idx],
            scales=torch.from_numpy(self.split.scales[idx]).to(device),
            weights=torch.from_numpy(self.split.weights[idx]).to(device),
        )

    def __iter__(self) -> Iterator[Batch]:
        order = self.order()
        bounds = [
            (b, order[b * self.batch_size : (b + 1) * self.batch_size]) for b in range(self.start_batch, len(self))
        ]
        if not self.prefetch:
            for b, indices in bounds:
                yield self._to_device(self._gather(indices), b)
            return
        # One batch ahead on a thread: the memmap gather (and pinning) overlaps the training step.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[_HostBatch] | None = pool.submit(self._gather, bounds[0][1]) if bounds else None
            for position, (b, _) in enumerate(bounds):
                assert pending is not None
                host = pending.result()
                nxt = position + 1
                pending = pool.submit(self._gather, bounds[nxt][1]) if nxt < len(bounds) else None
                yield self._to_device(host, b)
