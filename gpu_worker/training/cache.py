"""The prepared data cache (our analogue of TAO's dataset_convert): every image decoded once.

Layout of `<cache_dir>/<split>/`:
- `images.u8`: raw uint8 memmap [N, H, W, 3] (RGB, letterboxed to the spec's output size);
- `boxes.f32` [M, 4] (x1, y1, x2, y2 in network-input pixels), `classes.i64` [M] (index into the
  spec's target classes), `offsets.i64` [N + 1] (image i owns boxes offsets[i]:offsets[i + 1]);
- `index.json`: shapes, class names, image paths, letterbox scales, original sizes, source weights, and
  a fingerprint of inputs and settings. A split whose fingerprint matches is reused, not rebuilt.
A split is written to `<split>.tmp/` and renamed, so a crash never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gpu_worker.errors import UserError
from gpu_worker.specs.info import class_mapping, input_size, target_class_names
from gpu_worker.specs.proto.experiment_pb2 import Experiment
from gpu_worker.training.dataset import DEFAULT_VAL_SPLIT, SourcedSample, select_splits
from gpu_worker.training.kitti import read_kitti_labels
from gpu_worker.training.letterbox import image_size, letterbox_geometry, load_image_letterboxed

CACHE_FORMAT = 1
Progress = Callable[[str, int, int], None]  # (split name, done, total)


@dataclass(frozen=True, eq=False)
class PreparedSplit:
    """One split of the cache, read through memory maps (cheap to open, shareable across processes)."""

    name: str
    root: Path
    width: int
    height: int
    class_names: tuple[str, ...]
    paths: tuple[str, ...]  # original image files
    scales: np.ndarray  # [N] float32, original pixels -> network pixels
    orig_sizes: np.ndarray  # [N, 2] int32, (width, height) of the original images
    weights: np.ndarray  # [N] float32, data source weight of each image
    offsets: np.ndarray  # [N + 1] int64
    boxes: np.ndarray  # [M, 4] float32, network-input pixels
    classes: np.ndarray  # [M] int64
    images: np.ndarray = field(repr=False)  # memmap [N, H, W, 3] uint8

    def __len__(self) -> int:
        return len(self.paths)

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes [Ni, 4], classes [Ni]) of image `index`, in network-input pixels."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.boxes[lo:hi], self.classes[lo:hi]

    def content_sizes(self) -> np.ndarray:
        """[N, 2] int32 (width, height) of the letterboxed content (the rest is zero padding)."""
        sizes = np.empty((len(self), 2), dtype=np.int32)
        for i, (w, h) in enumerate(self.orig_sizes):
            g = letterbox_geometry(int(w), int(h), self.width, self.height)
            sizes[i] = (g.new_w, g.new_h)
        return sizes


@dataclass(frozen=True)
class PreparedData:
    """Both splits of a prepared cache. `val` is None when the spec defines no validation data."""

    cache_dir: Path
    train: PreparedSplit
    val: PreparedSplit | None
    class_names: tuple[str, ...]
    width: int
    height: int


@dataclass(frozen=True)
class _Settings:
    """Everything besides the files that decides a split's content (part of its fingerprint)."""

    width: int
    height: int
    class_names: tuple[str, ...]
    mapping: dict[str, str]
    min_bbox_width: float
    min_bbox_height: float
    val_split: float
    format: int = CACHE_FORMAT


def _fingerprint(items: list[SourcedSample], settings: _Settings) -> str:
    digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for item in items:
        for path in (item.sample.image, item.sample.label):
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{item.weight}\n".encode())
    return digest.hexdigest()


def open_split(root: Path) -> PreparedSplit:
    """Open a prepared split folder read-only."""
    index = json.loads((root / "index.json").read_text())
    n, h, w = index["count"], index["height"], index["width"]
    m = index["num_boxes"]
    images = (
        np.memmap(root / "images.u8", dtype=np.uint8, mode="r", shape=(n, h, w, 3))
        if n
        else np.zeros((0, h, w, 3), np.uint8)
    )
    boxes = np.fromfile(root / "boxes.f32", dtype=np.float32).reshape(m, 4)
    return PreparedSplit(
        name=index["name"],
        root=root,
        width=w,
        height=h,
        class_names=tuple(index["class_names"]),
        paths=tuple(index["paths"]),
        scales=np.asarray(index["scales"], dtype=np.float32),
        orig_sizes=np.asarray(index["orig_sizes"], dtype=np.int32).reshape(n, 2),
        weights=np.asarray(index["weights"], dtype=np.float32),
        offsets=np.fromfile(root / "offsets.i64", dtype=np.int64),
        boxes=boxes,
        classes=np.fromfile(root / "classes.i64", dtype=np.int64),
        images=images,
    )


def _write_split(
    name: str,
    items: list[SourcedSample],
    root: Path,
    settings: _Settings,
    fingerprint: str,
    workers: int,
    progress: Progress | None,
) -> None:
    width, height, mapping = settings.width, settings.height, settings.mapping
    min_w, min_h = settings.min_bbox_width, settings.min_bbox_height
    class_index = {c: i for i, c in enumerate(settings.class_names)}

    # Labels first: a bad label file fails the job before minutes of decoding.
    sizes = [image_size(item.sample.image) for item in items]
    all_boxes: list[np.ndarray] = []
    all_classes: list[np.ndarray] = []
    scales = np.empty(len(items), dtype=np.float32)
    for i, (item, (w, h)) in enumerate(zip(items, sizes, strict=True)):
        scale = letterbox_geometry(w, h, width, height).scale
        scales[i] = scale
        rows = [
            (max(o.x1, 0.0), max(o.y1, 0.0), min(o.x2, w), min(o.y2, h), class_index[mapping[o.name]])
            for o in read_kitti_labels(item.sample.label)
            if o.name in mapping and mapping[o.name] in class_index
        ]
        arr = np.asarray([r[:4] for r in rows], dtype=np.float32).reshape(-1, 4) * scale
        cls = np.asarray([r[4] for r in rows], dtype=np.int64)
        bw, bh = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
        keep = (bw > 0) & (bh > 0) & (bw >= min_w) & (bh >= min_h)
        all_boxes.append(arr[keep])
        all_classes.append(cls[keep])

    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = len(items)
    if n:
        images = np.memmap(tmp / "images.u8", dtype=np.uint8, mode="w+", shape=(n, height, width, 3))

        def decode(i: int) -> None:
            images[i], _ = load_image_letterboxed(items[i].sample.image, width, height)

        # PIL releases the GIL while decoding and resizing, so threads scale with cores.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, _ in enumerate(pool.map(decode, range(n)), start=1):
                if progress is not None:
                    progress(name, done, n)
        images.flush()
        del images
    else:
        (tmp / "images.u8").write_bytes(b"")
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in all_boxes])
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
    classes = np.concatenate(all_classes) if all_classes else np.zeros(0, np.int64)
    boxes.astype(np.float32).tofile(tmp / "boxes.f32")
    classes.astype(np.int64).tofile(tmp / "classes.i64")
    offsets.tofile(tmp / "offsets.i64")
    index = {
        "format": CACHE_FORMAT,
        "name": name,
        "fingerprint": fingerprint,
        "count": n,
        "width": width,
        "height": height,
        "num_boxes": len(boxes),
        "class_names": list(settings.class_names),
        "paths": [str(item.sample.image) for item in items],
        "scales": scales.tolist(),
        "orig_sizes": [list(s) for s in sizes],
        "weights": [item.weight for item in items],
    }
    (tmp / "index.json").write_text(json.dumps(index))
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)


def _prepare_split(
    name: str,
    items: list[SourcedSample],
    cache_dir: Path,
    settings: _Settings,
    workers: int,
    progress: Progress | None,
) -> PreparedSplit:
    root = cache_dir / name
    fingerprint = _fingerprint(items, settings)
    index_file = root / "index.json"
    if index_file.is_file():
        try:
            if json.loads(index_file.read_text()).get("fingerprint") == fingerprint:
                return open_split(root)
        except (OSError, ValueError):
            pass  # unreadable index: rebuild below
    _write_split(name, items, root, settings, fingerprint, workers, progress)
    return open_split(root)


def prepare_cache(
    spec: Experiment,
    cache_dir: str | Path,
    *,
    val_split: float = DEFAULT_VAL_SPLIT,
    workers: int | None = None,
    progress: Progress | None = None,
) -> PreparedData:
    """Decode, letterbox and store every image of the spec's train and validation data once.

    Classes go through `dataset_config.target_class_mapping` (KITTI names compared lower-case;
    unmapped classes are dropped) and are numbered in `cost_function_config.target_classes` order.
    Boxes are clipped to the image, scaled into network pixels and dropped when smaller than
    `preprocessing.min_bbox_width/height`. `val_split` (fraction) sizes fold 0 for `validation_fold`
    (use the dataset_convert spec's `kitti_config.val_split` / 100). Reuses an up-to-date cache.
    """
    width, height = input_size(spec)
    channels = spec.augmentation_config.preprocessing.output_image_channel
    if channels not in (0, 3):
        raise UserError(f"augmentation_config.preprocessing.output_image_channel is {channels}; only 3 (RGB)")
    names = target_class_names(spec)
    mapping = class_mapping(spec)
    pre = spec.augmentation_config.preprocessing
    settings = _Settings(width, height, tuple(names), mapping, pre.min_bbox_width, pre.min_bbox_height, val_split)
    train_items, val_items = select_splits(spec, val_split)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    n_workers = workers or min(16, os.cpu_count() or 1)
    train = _prepare_split("train", train_items, cache, settings, n_workers, progress)
    val = _prepare_split("val", val_items, cache, settings, n_workers, progress) if val_items is not None else None
    return PreparedData(cache, train, val, tuple(names), width, height)
