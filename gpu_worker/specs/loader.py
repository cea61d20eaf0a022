"""Load TAO DetectNet_v2 spec files (protobuf text format), exactly as TAO reads them.

Parsing uses `text_format.Merge` like TAO's own loader, without merging any default spec first (TAO's
`train` does the same), so all eight config messages must be in the file. Errors become `UserError`
with `file:line:col: message`. Relative paths in the spec (`data_sources`, `validation_data_source`,
`pretrained_model_file`) are resolved against the spec file's folder; absolute paths stay as written.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message

from gpu_worker.errors import UserError
from gpu_worker.specs.proto.dataset_export_config_pb2 import DatasetExportConfig
from gpu_worker.specs.proto.experiment_pb2 import DataSource, Experiment
from gpu_worker.specs.validate import validate_dataset_convert, validate_experiment

ExperimentSpec = Experiment
DatasetConvertSpec = DatasetExportConfig

_LOCATION = re.compile(r"^\d+:\d+ : ")
_CONVERT_HINT = re.compile(r"^\s*(kitti_config|coco_config)\b", re.MULTILINE)


class SpecKind(StrEnum):
    EXPERIMENT = "experiment"  # train / evaluate / prune / export: `Experiment`
    DATASET_CONVERT = "dataset_convert"  # `DatasetExportConfig`


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: spec file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read spec file ({exc})") from exc
    if not text.strip():
        raise UserError(f"{path}: spec file is empty")
    return text


def _parse(text: str, message: Message, path: Path) -> None:
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        detail = _LOCATION.sub("", str(exc))
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        raise UserError(f"{where}: {detail}") from exc


def _try_parse(text: str, message: Message, path: Path) -> UserError | None:
    try:
        _parse(text, message, path)
    except UserError as exc:
        return exc
    return None


def detect_spec_kind(path: str | Path) -> SpecKind:
    """Experiment spec or dataset_convert spec? UserError (file:line:col) when it is neither."""
    spec_path = Path(path)
    text = _read(spec_path)
    experiment_error = _try_parse(text, Experiment(), spec_path)
    if experiment_error is None:
        return SpecKind.EXPERIMENT
    convert_error = _try_parse(text, DatasetExportConfig(), spec_path)
    if convert_error is None:
        return SpecKind.DATASET_CONVERT
    raise convert_error if _CONVERT_HINT.search(text) else experiment_error


def _resolve(value: str, base: Path) -> str:
    if not value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def _resolve_source(source: DataSource, base: Path) -> None:
    source.image_directory_path = _resolve(source.image_directory_path, base)
    source.tfrecords_path = _resolve(source.tfrecords_path, base)


def resolve_experiment_paths(spec: Experiment, base: Path) -> None:
    """Make relative data and model paths absolute against `base` (in place)."""
    for source in spec.dataset_config.data_sources:
        _resolve_source(source, base)
    if spec.dataset_config.WhichOneof("dataset_split_type") == "validation_data_source":
        _resolve_source(spec.dataset_config.validation_data_source, base)
    spec.model_config.pretrained_model_file = _resolve(spec.model_config.pretrained_model_file, base)


def load_experiment_spec(path: str | Path, *, validate: bool = True, resolve_paths: bool = True) -> Experiment:
    """Parse (and by default validate) a DetectNet_v2 experiment spec; UserError on any problem."""
    spec_path = Path(path)
    text = _read(spec_path)
    spec = Experiment()
    error = _try_parse(text, spec, spec_path)
    if error is not None:
        if _CONVERT_HINT.search(text) and _try_parse(text, DatasetExportConfig(), spec_path) is None:
            raise UserError(f"{spec_path}: this is a dataset_convert spec, not a training (experiment) spec")
        raise error
    if resolve_paths:
        resolve_experiment_paths(spec, spec_path.resolve().parent)
    if validate:
        validate_experiment(spec, spec_path, text)
    return spec


def load_dataset_convert_spec(
    path: str | Path, *, validate: bool = True, resolve_paths: bool = True
) -> DatasetExportConfig:
    """Parse (and by default validate) a dataset_convert spec (`kitti_config` ...)."""
    spec_path = Path(path)
    text = _read(spec_path)
    spec = DatasetExportConfig()
    error = _try_parse(text, spec, spec_path)
    if error is not None:
        if _try_parse(text, Experiment(), spec_path) is None:
            raise UserError(f"{spec_path}: this is a training (experiment) spec, not a dataset_convert spec")
        raise error
    if resolve_paths:
        base = spec_path.resolve().parent
        if spec.HasField("kitti_config"):
            spec.kitti_config.root_directory_path = _resolve(spec.kitti_config.root_directory_path, base)
        spec.image_directory_path = _resolve(spec.image_directory_path, base)
    if validate:
        validate_dataset_convert(spec, spec_path, text)
    return spec


def spec_to_text(spec: Message) -> str:
    """The spec in protobuf text format (what TAO reads)."""
    return str(text_format.MessageToString(spec))


def write_spec(spec: Message, path: str | Path) -> Path:
    """Write a spec as text format; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spec_to_text(spec))
    return out


def save_experiment_spec(spec: Experiment, path: str | Path) -> Path:
    """Write an experiment spec as text format (relative paths stay relative to where it is read)."""
    return write_spec(spec, path)
