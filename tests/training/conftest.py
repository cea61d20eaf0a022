"""Training-test fixtures: a tiny spec over a few real sample images (from the repo, no ../shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.specs import load_experiment_spec, with_data_paths
from gpu_worker.specs.proto.experiment_pb2 import Experiment

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "coco-people"
DEMO_SPEC = REPO / "specs" / "demo_cpu.txt"
# Four sample photos whose only target-class objects are a few large people.
OVERFIT_STEMS = ("000000000326", "000000000322", "000000000370", "000000000589")


def copy_samples(dest: Path, stems: tuple[str, ...] = OVERFIT_STEMS) -> Path:
    (dest / "images").mkdir(parents=True)
    (dest / "labels").mkdir(parents=True)
    for stem in stems:
        shutil.copy(SAMPLES / "images" / f"{stem}.jpg", dest / "images")
        shutil.copy(SAMPLES / "labels" / f"{stem}.txt", dest / "labels")
    return dest


def _tiny_spec(data_dir: Path, *, epochs: int, batch_size: int = 4, width: int = 256, height: int = 160) -> Experiment:
    """The CPU demo spec on `data_dir` (train = validation), no augmentation, small input."""
    spec = with_data_paths(load_experiment_spec(DEMO_SPEC, validate=False), data_dir, data_dir)
    pre = spec.augmentation_config.preprocessing
    pre.output_image_width, pre.output_image_height = width, height
    spec.augmentation_config.spatial_augmentation.Clear()
    spec.augmentation_config.color_augmentation.Clear()
    spec.training_config.num_epochs = epochs
    spec.training_config.batch_size_per_gpu = batch_size
    spec.training_config.checkpoint_interval = 1
    schedule = spec.training_config.learning_rate.soft_start_annealing_schedule
    schedule.min_learning_rate, schedule.max_learning_rate = 5e-4, 5e-3
    spec.cost_function_config.enable_autoweighting = False
    return spec


def _narrow_model_file(path: Path, num_classes: int = 3, divisor: int = 4, num_layers: int = 10) -> Path:
    """A ResNet with 1/divisor of the standard widths, saved as a model file (a 'pruned' base model)."""
    standard = ChannelPlan.standard(num_layers, num_classes)
    widths = {k: (v if k.startswith("output_") else max(v // divisor, 4)) for k, v in standard.widths.items()}
    plan = ChannelPlan(num_layers=num_layers, all_projections=True, num_classes=num_classes, widths=widths)
    model = DetectNetV2(plan)
    return save_model(path, model, ["person", "bag", "face"][:num_classes], (160, 256))


@pytest.fixture
def overfit_data(tmp_path: Path) -> Path:
    """Four real sample photos in KITTI layout."""
    return copy_samples(tmp_path / "kitti")


@pytest.fixture
def make_spec() -> object:
    """tiny_spec(data_dir, epochs=..., batch_size=4, width=256, height=160) -> Experiment."""
    return _tiny_spec


@pytest.fixture
def narrow_model(tmp_path: Path) -> Path:
    """A narrow ResNet-10 model file (a quarter of the standard widths) to start from."""
    return _narrow_model_file(tmp_path / "narrow.pt")
