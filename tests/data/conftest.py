"""Small KITTI datasets for data-pipeline tests: a copy of a few real COCO photos, or synthetic ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpu_worker.specs import load_experiment_spec, with_data_paths
from gpu_worker.specs.proto.experiment_pb2 import Experiment

REPO = Path(__file__).resolve().parents[2]
DEMO_SPEC = REPO / "specs" / "demo_cpu.txt"


@pytest.fixture
def coco_subset(coco_kitti: Path, tmp_path: Path) -> Path:
    """Eight real photos (with person/bag labels) of coco128-kitti/train in a KITTI folder."""
    src = coco_kitti / "train"
    root = tmp_path / "kitti"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    chosen = 0
    for image in sorted((src / "images").glob("*.jpg")):
        label = src / "labels" / f"{image.stem}.txt"
        text = label.read_text()
        if "person" not in text:
            continue
        shutil.copy(image, root / "images" / image.name)
        shutil.copy(label, root / "labels" / label.name)
        chosen += 1
        if chosen == 8:
            break
    assert chosen == 8
    return root


def make_synthetic_kitti(root: Path, count: int, size: tuple[int, int] = (200, 100)) -> Path:
    """`count` images with one bright 'person' rectangle each (and a 'dog' that no class maps)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(count):
        pixels = np.zeros((h, w, 3), dtype=np.uint8)
        x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x2, y2 = x1 + w // 4, y1 + h // 3
        pixels[y1:y2, x1:x2] = 255
        Image.fromarray(pixels).save(root / "images" / f"img_{i:03d}.png")
        (root / "labels" / f"img_{i:03d}.txt").write_text(
            f"person 0.00 0 0.00 {x1} {y1} {x2} {y2} 0 0 0 0 0 0 0\ndog 0.00 0 0.00 1 1 5 5 0 0 0 0 0 0 0\n"
        )
    return root


def demo_spec(train_dir: Path, val_dir: Path | None = None) -> Experiment:
    spec = with_data_paths(load_experiment_spec(DEMO_SPEC), train_dir, val_dir)
    spec.dataset_config.image_extension = ""  # accept jpg and png
    return spec


@pytest.fixture
def synthetic_kitti() -> Callable[..., Path]:
    """Factory: make_synthetic_kitti(root, count, size=(200, 100))."""
    return make_synthetic_kitti


@pytest.fixture
def spec_for() -> Callable[..., Experiment]:
    """Factory: the demo spec pointed at (train_dir, val_dir=None), any image extension."""
    return demo_spec
