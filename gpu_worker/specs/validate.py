"""TAO's checks on a loaded spec (nvidia_tao_tf1 spec_handler rules), plus consistency between sections.

All problems are collected and reported at once in one `UserError`, each with the spec line where the
offending field first appears when it can be found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from gpu_worker.errors import UserError
from gpu_worker.specs.proto.dataset_export_config_pb2 import DatasetExportConfig
from gpu_worker.specs.proto.experiment_pb2 import Experiment

REQUIRED_MESSAGES = (
    "dataset_config",
    "augmentation_config",
    "postprocessing_config",
    "model_config",
    "evaluation_config",
    "cost_function_config",
    "training_config",
    "bbox_rasterizer_config",
)
SUPPORTED_ARCHS = (
    "resnet",
    "vgg",
    "darknet",
    "mobilenet_v1",
    "mobilenet_v2",
    "squeezenet",
    "googlenet",
    "efficientnet_b0",
)
OBJECTIVES = ("cov", "bbox")


class _Issues:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.items: list[str] = []

    def _line_of(self, token: str) -> int | None:
        pattern = re.compile(rf"(^|[\s{{]){re.escape(token)}\s*[:{{]")
        for number, line in enumerate(self.lines, start=1):
            if pattern.search(line.split("#", 1)[0]):
                return number
        return None

    def add(self, field: str, problem: str) -> None:
        line = self._line_of(field.rsplit(".", 1)[-1].split("[", 1)[0])
        where = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{where}: {field}: {problem}")

    def check_range(
        self, field: str, value: float, low: float | None = None, high: float | None = None, *, open_high: bool = False
    ) -> None:
        if low is not None and value < low:
            self.add(field, f"must be >= {low:g}, got {value:g}")
        elif high is not None and (value >= high if open_high else value > high):
            self.add(field, f"must be {'<' if open_high else '<='} {high:g}, got {value:g}")

    def check_fractions(self, prefix: str, message: object, names: Iterable[str]) -> None:
        for name in names:
            self.check_range(f"{prefix}.{name}", float(getattr(message, name)), 0.0, 1.0)

    def raise_if_any(self, what: str) -> None:
        if self.items:
            listing = "\n  ".join(self.items)
            raise UserError(f"{self.path}: invalid {what} ({len(self.items)} problem(s)):\n  {listing}")


def _check_augmentation(spec: Experiment, issues: _Issues) -> None:
    aug = spec.augmentation_config
    if not aug.HasField("preprocessing"):
        issues.add("augmentation_config.preprocessing", "is required (output_image_width/height ...)")
        return
    pre = aug.preprocessing
    for name in ("output_image_width", "output_image_height"):
        value = int(getattr(pre, name))
        if value <= 0 or value % 16:
            issues.add(f"augmentation_config.preprocessing.{name}", f"must be a positive multiple of 16, got {value}")
    if pre.output_image_channel not in (0, 1, 3):
        issues.add("augmentation_config.preprocessing.output_image_channel", "must be 1 or 3")
    for name in ("min_bbox_width", "min_bbox_height"):
        issues.check_range(f"augmentation_config.preprocessing.{name}", getattr(pre, name), 0.0)
    spatial = aug.spatial_augmentation
    prefix = "augmentation_config.spatial_augmentation"
    issues.check_fractions(prefix, spatial, ("hflip_probability", "vflip_probability", "rotate_probability"))
    for name in ("zoom_min", "zoom_max", "translate_max_x", "translate_max_y", "rotate_rad_max"):
        issues.check_range(f"{prefix}.{name}", getattr(spatial, name), 0.0)
    if spatial.zoom_min > 0 and spatial.zoom_max > 0 and spatial.zoom_min > spatial.zoom_max:
        issues.add(f"{prefix}.zoom_min", f"must be <= zoom_max ({spatial.zoom_max:g}), got {spatial.zoom_min:g}")
    color = aug.color_augmentation
    prefix = "augmentation_config.color_augmentation"
    issues.check_fractions(
        prefix, color, ("color_shift_stddev", "saturation_shift_max", "contrast_scale_max", "contrast_center")
    )
    issues.check_range(f"{prefix}.hue_rotation_max", color.hue_rotation_max, 0.0)


def _check_classes(spec: Experiment, issues: _Issues) -> None:
    cost = spec.cost_function_config
    names = [c.name for c in cost.target_classes]
    if not names:
        issues.add("cost_function_config.target_classes", "at least one target class is required")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        issues.add("cost_function_config.target_classes", f"duplicate class names {duplicates}")
    for i, target in enumerate(cost.target_classes):
        field = f"cost_function_config.target_classes[{i}]"
        if not target.name:
            issues.add(f"{field}.name", "must not be empty")
        issues.check_range(f"{field}.class_weight", target.class_weight, 0.0)
        issues.check_range(f"{field}.coverage_foreground_weight", target.coverage_foreground_weight, 0.0, 1.0)
        objectives = [o.name for o in target.objectives]
        if sorted(objectives) != sorted(OBJECTIVES):
            issues.add(
                f"{field}.objectives", f"class {target.name!r} needs objectives 'cov' and 'bbox', got {objectives}"
            )
        for objective in target.objectives:
            issues.check_range(f"{field}.objectives.initial_weight", objective.initial_weight, 0.0)
            issues.check_range(f"{field}.objectives.weight_target", objective.weight_target, 0.0)
    issues.check_range("cost_function_config.max_objective_weight", cost.max_objective_weight, 0.0)
    issues.check_range("cost_function_config.min_objective_weight", cost.min_objective_weight, 0.0)

    sections: dict[str, set[str]] = {
        "bbox_rasterizer_config.target_class_config": set(spec.bbox_rasterizer_config.target_class_config),
        "postprocessing_config.target_class_config": set(spec.postprocessing_config.target_class_config),
        "evaluation_config.minimum_detection_ground_truth_overlap": set(
            spec.evaluation_config.minimum_detection_ground_truth_overlap
        ),
        "evaluation_config.evaluation_box_config": set(spec.evaluation_config.evaluation_box_config),
    }
    for section, keys in sections.items():
        missing = [n for n in names if n not in keys]
        if missing:
            issues.add(section, f"has no entry for target class(es) {missing} (cost_function_config.target_classes)")
    mapped = set(spec.dataset_config.target_class_mapping.values())
    unmapped = [n for n in names if n not in mapped]
    if unmapped:
        issues.add(
            "dataset_config.target_class_mapping",
            f"no label class maps to target class(es) {unmapped}; add target_class_mapping {{ key: ... value: ... }}",
        )


def _check_model_and_training(spec: Experiment, issues: _Issues) -> None:
    model = spec.model_config
    if model.arch not in SUPPORTED_ARCHS:
        issues.add("model_config.arch", f"must be one of {list(SUPPORTED_ARCHS)}, got {model.arch!r}")
    issues.check_range("model_config.num_layers", model.num_layers, 0.0)
    if not model.objective_set.HasField("bbox") or not model.objective_set.HasField("cov"):
        issues.add("model_config.objective_set", "needs both bbox { scale offset } and cov { }")
    else:
        if model.objective_set.bbox.scale <= 0:
            issues.add("model_config.objective_set.bbox.scale", f"must be > 0, got {model.objective_set.bbox.scale:g}")
        issues.check_range("model_config.objective_set.bbox.offset", model.objective_set.bbox.offset, 0.0)
    issues.check_range("model_config.dropout_rate", model.dropout_rate, 0.0, 1.0)

    train = spec.training_config
    for name in ("batch_size_per_gpu", "num_epochs"):
        if getattr(train, name) <= 0:
            issues.add(f"training_config.{name}", "must be > 0")
    schedule = train.learning_rate.WhichOneof("learning_rate")
    if schedule is None:
        issues.add("training_config.learning_rate", "needs soft_start_annealing_schedule { ... }")
    elif schedule == "soft_start_annealing_schedule":
        lr = train.learning_rate.soft_start_annealing_schedule
        prefix = "training_config.learning_rate.soft_start_annealing_schedule"
        for name in ("min_learning_rate", "max_learning_rate"):
            if getattr(lr, name) <= 0:
                issues.add(f"{prefix}.{name}", f"must be > 0, got {getattr(lr, name):g}")
        if lr.min_learning_rate > lr.max_learning_rate:
            issues.add(f"{prefix}.min_learning_rate", "must be <= max_learning_rate")
        issues.check_range(f"{prefix}.soft_start", lr.soft_start, 0.0, 1.0, open_high=True)
        issues.check_range(f"{prefix}.annealing", lr.annealing, 0.0, 1.0, open_high=True)
        if lr.soft_start > lr.annealing:
            issues.add(f"{prefix}.soft_start", "must be <= annealing (both are fractions of training)")
    issues.check_range("training_config.regularizer.weight", train.regularizer.weight, 0.0)
    if train.optimizer.WhichOneof("optimizer") != "adam":
        issues.add("training_config.optimizer", "needs adam { epsilon beta1 beta2 }")
    else:
        adam = train.optimizer.adam
        for name in ("epsilon", "beta1", "beta2"):
            if not 0 < getattr(adam, name) < 1:
                issues.add(f"training_config.optimizer.adam.{name}", f"must be in (0, 1), got {getattr(adam, name):g}")
    if train.cost_scaling.enabled:
        for name in ("initial_exponent", "increment", "decrement"):
            if getattr(train.cost_scaling, name) <= 0:
                issues.add(f"training_config.cost_scaling.{name}", "must be > 0 when cost scaling is enabled")


def _check_rest(spec: Experiment, issues: _Issues) -> None:
    raster = spec.bbox_rasterizer_config
    issues.check_range("bbox_rasterizer_config.deadzone_radius", raster.deadzone_radius, 0.0, 1.0)
    for key, value in raster.target_class_config.items():
        issues.check_fractions(
            f"bbox_rasterizer_config.target_class_config[{key}]",
            value,
            ("cov_center_x", "cov_center_y", "cov_radius_x", "cov_radius_y", "bbox_min_radius"),
        )
    for key, post in spec.postprocessing_config.target_class_config.items():
        clustering = post.clustering_config
        issues.check_fractions(
            f"postprocessing_config.target_class_config[{key}].clustering_config",
            clustering,
            ("coverage_threshold", "dbscan_eps", "nms_iou_threshold", "nms_confidence_threshold"),
        )
        issues.check_range(
            f"postprocessing_config.target_class_config[{key}].clustering_config.minimum_bounding_box_height",
            clustering.minimum_bounding_box_height,
            0.0,
        )
    evaluation = spec.evaluation_config
    if evaluation.validation_period_during_training <= 0:
        issues.add("evaluation_config.validation_period_during_training", "must be > 0")
    if evaluation.first_validation_epoch <= 0:
        issues.add("evaluation_config.first_validation_epoch", "must be > 0")
    for key, overlap in evaluation.minimum_detection_ground_truth_overlap.items():
        issues.check_range(f"evaluation_config.minimum_detection_ground_truth_overlap[{key}]", overlap, 0.0, 1.0)
    for key, box in evaluation.evaluation_box_config.items():
        if box.minimum_height < 0 or box.minimum_width < 0 or box.maximum_height <= 0 or box.maximum_width <= 0:
            issues.add(f"evaluation_config.evaluation_box_config[{key}]", "minimums must be >= 0 and maximums > 0")
    dataset = spec.dataset_config
    if not dataset.data_sources:
        issues.add("dataset_config.data_sources", "at least one data source is required")
    for i, source in enumerate(dataset.data_sources):
        if not source.image_directory_path:
            issues.add(f"dataset_config.data_sources[{i}].image_directory_path", "must not be empty")
        issues.check_range(f"dataset_config.data_sources[{i}].source_weight", source.source_weight, 0.0)
    split = dataset.WhichOneof("dataset_split_type")
    if split == "validation_data_source" and not dataset.validation_data_source.image_directory_path:
        issues.add("dataset_config.validation_data_source.image_directory_path", "must not be empty")


def validate_experiment(spec: Experiment, path: Path, text: str = "") -> None:
    """Raise one UserError listing every problem of an experiment spec; return when it is valid."""
    issues = _Issues(path, text)
    missing = [name for name in REQUIRED_MESSAGES if not spec.HasField(name)]
    if missing:
        raise UserError(
            f"{path}: missing config message(s) {', '.join(missing)}; TAO loads a training spec without "
            f"defaults, so all of {', '.join(REQUIRED_MESSAGES)} must be present"
        )
    _check_augmentation(spec, issues)
    _check_classes(spec, issues)
    _check_model_and_training(spec, issues)
    _check_rest(spec, issues)
    issues.raise_if_any("experiment spec")


def validate_dataset_convert(spec: DatasetExportConfig, path: Path, text: str = "") -> None:
    """Raise one UserError listing every problem of a dataset_convert spec."""
    issues = _Issues(path, text)
    if not spec.HasField("kitti_config"):
        issues.add("kitti_config", "is required (this project converts KITTI datasets)")
        issues.raise_if_any("dataset_convert spec")
    kitti = spec.kitti_config
    for name in ("root_directory_path", "image_dir_name", "label_dir_name"):
        if not getattr(kitti, name):
            issues.add(f"kitti_config.{name}", "must not be empty")
    if not kitti.image_extension.startswith("."):
        issues.add("kitti_config.image_extension", f'needs a leading dot, e.g. ".jpg"; got {kitti.image_extension!r}')
    if kitti.partition_mode not in ("random", "sequence"):
        issues.add("kitti_config.partition_mode", f'must be "random" or "sequence", got {kitti.partition_mode!r}')
    if kitti.partition_mode == "random" and kitti.num_partitions != 2:
        issues.add("kitti_config.num_partitions", f"must be 2 with partition_mode random, got {kitti.num_partitions}")
    if kitti.num_shards < 1:
        issues.add("kitti_config.num_shards", "must be >= 1")
    issues.check_range("kitti_config.val_split", kitti.val_split, 0.0, 100.0, open_high=True)
    issues.raise_if_any("dataset_convert spec")
