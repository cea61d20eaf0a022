"""Read-only views of an experiment spec that the rest of the project needs."""

from __future__ import annotations

from dataclasses import dataclass

from gpu_worker.specs.proto.experiment_pb2 import Experiment


def target_class_names(spec: Experiment) -> list[str]:
    """Class names in output-channel order (`cost_function_config.target_classes` order)."""
    return [c.name for c in spec.cost_function_config.target_classes]


def class_mapping(spec: Experiment) -> dict[str, str]:
    """`dataset_config.target_class_mapping` with lower-cased keys (KITTI label names -> target class)."""
    return {key.lower(): value for key, value in spec.dataset_config.target_class_mapping.items()}


def input_size(spec: Experiment) -> tuple[int, int]:
    """(width, height) of the network input."""
    pre = spec.augmentation_config.preprocessing
    return int(pre.output_image_width), int(pre.output_image_height)


@dataclass(frozen=True)
class Backbone:
    arch: str
    num_layers: int
    all_projections: bool
    use_batch_norm: bool

    def __str__(self) -> str:
        projections = ", all_projections" if self.all_projections else ""
        return f"{self.arch}{self.num_layers}{projections}"


def backbone(spec: Experiment) -> Backbone:
    m = spec.model_config
    return Backbone(m.arch, int(m.num_layers), bool(m.all_projections), bool(m.use_batch_norm))


@dataclass(frozen=True)
class DataPaths:
    train: list[str]  # image_directory_path of every data source
    validation: str | None  # validation_data_source, if any
    validation_fold: int | None


def data_paths(spec: Experiment) -> DataPaths:
    config = spec.dataset_config
    which = config.WhichOneof("dataset_split_type")
    return DataPaths(
        train=[s.image_directory_path for s in config.data_sources],
        validation=config.validation_data_source.image_directory_path if which == "validation_data_source" else None,
        validation_fold=int(config.validation_fold) if which == "validation_fold" else None,
    )
