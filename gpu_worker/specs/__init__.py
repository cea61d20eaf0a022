"""TAO DetectNet_v2 spec files: schema (`proto/`), loading, validation, edits and summaries."""

from __future__ import annotations

from gpu_worker.specs.edit import with_data_paths, with_pretrained_model
from gpu_worker.specs.info import backbone, class_mapping, data_paths, input_size, target_class_names
from gpu_worker.specs.loader import (
    DatasetConvertSpec,
    ExperimentSpec,
    SpecKind,
    detect_spec_kind,
    load_dataset_convert_spec,
    load_experiment_spec,
    resolve_experiment_paths,
    save_experiment_spec,
    spec_to_text,
    write_spec,
)

__all__ = [
    "DatasetConvertSpec",
    "ExperimentSpec",
    "SpecKind",
    "backbone",
    "class_mapping",
    "data_paths",
    "detect_spec_kind",
    "input_size",
    "load_dataset_convert_spec",
    "load_experiment_spec",
    "resolve_experiment_paths",
    "save_experiment_spec",
    "spec_to_text",
    "target_class_names",
    "with_data_paths",
    "with_pretrained_model",
    "write_spec",
]
