"""Spec files as the TAO container must see them: every host path replaced by its container path.

Specs are parsed and validated with the project's TAO schema (`gpu_worker.specs`), edited as
messages and written back in protobuf text format, so what TAO reads is exactly what we checked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.errors import PermanentJobError, UserError
from gpu_worker.specs.loader import load_dataset_convert_spec, load_experiment_spec, spec_to_text
from gpu_worker.specs.proto.dataset_export_config_pb2 import DatasetExportConfig
from gpu_worker.specs.proto.experiment_pb2 import Experiment
from gpu_worker.tao.command import MountPlan

IMAGE_DIR = "images"
LABEL_DIR = "labels"
TFRECORDS_NAME = "kitti"  # dataset_convert -o <dir>/kitti -> kitti-fold-000-of-002-shard-00000-of-00010
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}


class TaoSpecInvalid(PermanentJobError, UserError):
    """A spec file cannot be used for this TAO job; the message names the file and the field."""


@dataclass(frozen=True)
class SpecSummary:
    classes: tuple[str, ...]  # output-channel order
    input_dims: tuple[int, int, int]  # C, H, W
    num_epochs: int


def load_experiment(path: Path) -> Experiment:
    try:
        return load_experiment_spec(path)
    except UserError as exc:
        raise TaoSpecInvalid(str(exc)) from exc


def summarize(spec: Experiment) -> SpecSummary:
    pre = spec.augmentation_config.preprocessing
    channels = int(pre.output_image_channel) or 3
    return SpecSummary(
        classes=tuple(c.name for c in spec.cost_function_config.target_classes),
        input_dims=(channels, int(pre.output_image_height), int(pre.output_image_width)),
        num_epochs=int(spec.training_config.num_epochs),
    )


def dataset_image_extension(dataset_dir: Path) -> str:
    """The most common image extension under <dataset>/images, with its dot (".jpg")."""
    counts = (
        Counter(p.suffix.lower() for p in (dataset_dir / IMAGE_DIR).iterdir() if p.suffix.lower() in _IMAGE_EXTENSIONS)
        if (dataset_dir / IMAGE_DIR).is_dir()
        else Counter()
    )
    if not counts:
        raise TaoSpecInvalid(f"{dataset_dir / IMAGE_DIR}: no .jpg/.jpeg/.png images for TAO dataset_convert")
    return counts.most_common(1)[0][0]


def experiment_for_container(
    spec: Experiment,
    mounts: MountPlan,
    *,
    dataset_dir: Path,
    tfrecords_dir: Path,
    image_extension: str,
    pretrained_model: Path | None,
    load_graph: bool | None = None,
) -> Experiment:
    """A copy reading the job's TFRecords and images and starting from `pretrained_model`.

    One data source (the job's dataset), validated on fold 0 of dataset_convert's random split;
    `pretrained_model=None` trains from scratch; `load_graph=True` for pruned models.
    """
    out = Experiment()
    out.CopyFrom(spec)
    config = out.dataset_config
    weight = config.data_sources[0].source_weight if config.data_sources else 0.0
    del config.data_sources[:]
    source = config.data_sources.add()
    source.tfrecords_path = f"{mounts.container_path(tfrecords_dir)}/{TFRECORDS_NAME}*"
    source.image_directory_path = mounts.container_path(dataset_dir)
    if weight:
        source.source_weight = weight
    config.validation_fold = 0  # also clears a validation_data_source (same oneof)
    config.image_extension = image_extension.lstrip(".")
    model = out.model_config
    model.pretrained_model_file = mounts.container_path(pretrained_model) if pretrained_model else ""
    if load_graph is not None:
        model.load_graph = load_graph
    return out


def dataset_convert_spec(
    source: Path | None, experiment: Experiment, mounts: MountPlan, *, dataset_dir: Path, image_extension: str
) -> DatasetExportConfig:
    """The dataset_convert spec for the job's KITTI folder: `source` if given, else a random 2-fold split.

    Class mapping comes from the experiment spec when `source` has none. The split must have at least
    two partitions, because the experiment spec validates on fold 0.
    """
    if source is not None:
        try:
            spec = load_dataset_convert_spec(source, validate=True, resolve_paths=False)
        except UserError as exc:
            raise TaoSpecInvalid(str(exc)) from exc
        if not spec.HasField("kitti_config"):
            raise TaoSpecInvalid(f"{source}: the TAO backend converts KITTI folders; use kitti_config")
    else:
        spec = DatasetExportConfig()
        kitti = spec.kitti_config
        kitti.partition_mode, kitti.num_partitions, kitti.val_split, kitti.num_shards = "random", 2, 10.0, 10
    kitti = spec.kitti_config
    if kitti.num_partitions < 2:
        where = source or "dataset_convert spec"
        raise TaoSpecInvalid(f"{where}: kitti_config.num_partitions must be >= 2 (training validates on fold 0)")
    root = mounts.container_path(dataset_dir)
    kitti.root_directory_path = root
    kitti.image_dir_name, kitti.label_dir_name = IMAGE_DIR, LABEL_DIR
    kitti.image_extension = image_extension if image_extension.startswith(".") else f".{image_extension}"
    spec.image_directory_path = root
    if not spec.target_class_mapping:
        spec.target_class_mapping.update(experiment.dataset_config.target_class_mapping)
    return spec


def write_spec_text(spec: Experiment | DatasetExportConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec_to_text(spec))
    return path
