"""Which KITTI samples make up the train and validation splits of an experiment spec.

- `dataset_config.data_sources`: each `image_directory_path` is a KITTI root (`images/` + `labels/`);
  `tfrecords_path` is TAO's and ignored here. `source_weight` (0 = 1.0) weights its images' losses.
- `validation_data_source`: its images are the validation split, all data sources train.
- `validation_fold`: like TAO's dataset_convert in `random` partition mode, fold 0 holds `val_split`
  of the images and fold 1 the rest; the chosen fold validates, the other trains. Membership is decided
  by a hash of each image's file name, so it is deterministic and does not move when images are added.
- neither: no validation split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.errors import UserError
from gpu_worker.specs.proto.experiment_pb2 import Experiment
from gpu_worker.training.kitti import KittiSample, list_kitti_samples

DEFAULT_VAL_SPLIT = 0.1


@dataclass(frozen=True)
class SourcedSample:
    """A KITTI sample and the loss weight of the data source it came from."""

    sample: KittiSample
    weight: float
    source: int  # index into data_sources (-1 for validation_data_source)


def _samples_of(root: str, extension: str, weight: float, source: int) -> list[SourcedSample]:
    if not root:
        raise UserError("dataset_config: a data source has an empty image_directory_path")
    return [SourcedSample(s, weight or 1.0, source) for s in list_kitti_samples(Path(root), extension)]


def _fold_key(item: SourcedSample) -> str:
    digest = hashlib.sha1(f"{item.source}/{item.sample.image.name}".encode()).hexdigest()
    return digest + item.sample.image.name  # name breaks (impossible) ties deterministically


def fold_split(items: list[SourcedSample], val_split: float) -> tuple[list[SourcedSample], list[SourcedSample]]:
    """(fold 0, fold 1): fold 0 gets round(val_split * N) images (at least 1, at most N - 1, N >= 2)."""
    if not 0.0 <= val_split < 1.0:
        raise UserError(f"val_split must be a fraction in [0, 1), got {val_split}")
    n = len(items)
    n_val = round(n * val_split)
    if val_split > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    chosen = {id(item) for item in sorted(items, key=_fold_key)[:n_val]}
    fold0 = [item for item in items if id(item) in chosen]
    fold1 = [item for item in items if id(item) not in chosen]
    return fold0, fold1


def select_splits(
    spec: Experiment, val_split: float = DEFAULT_VAL_SPLIT
) -> tuple[list[SourcedSample], list[SourcedSample] | None]:
    """(train samples, validation samples or None) for an experiment spec, each sorted by file name."""
    config = spec.dataset_config
    if not config.data_sources:
        raise UserError("dataset_config has no data_sources")
    extension = config.image_extension
    train: list[SourcedSample] = []
    for index, source in enumerate(config.data_sources):
        train.extend(_samples_of(source.image_directory_path, extension, source.source_weight, index))
    split_type = config.WhichOneof("dataset_split_type")
    if split_type == "validation_data_source":
        val_source = config.validation_data_source
        val = _samples_of(val_source.image_directory_path, extension, val_source.source_weight, -1)
        return train, val
    if split_type == "validation_fold":
        fold = config.validation_fold
        if fold not in (0, 1):
            raise UserError(
                f"dataset_config.validation_fold is {fold}; with random partitioning there are two folds: "
                "0 (the validation share) or 1"
            )
        fold0, fold1 = fold_split(train, val_split)
        return (fold1, fold0) if fold == 0 else (fold0, fold1)
    return train, None
