"""Copies of a spec pointed at other data or another pretrained model (the pipeline fills these in).

The PeopleNet specs in `specs/` carry placeholder data paths; a job calls `with_data_paths` with the
KITTI folders it fetched and `with_pretrained_model` with the base model, then writes the result next
to the run (`write_spec`) for TAO or hands it to the torch backend.
"""

from __future__ import annotations

from pathlib import Path

from gpu_worker.specs.proto.experiment_pb2 import Experiment


def _tfrecords_for(folder: Path) -> str:
    # Where our TAO dataset_convert stage writes a folder's TFRecords (`-o <folder>/tfrecords/<name>`).
    return str(folder / "tfrecords" / "*")


def with_data_paths(spec: Experiment, train_dir: str | Path, val_dir: str | Path | None = None) -> Experiment:
    """A copy reading training data from the KITTI folder `train_dir`.

    With `val_dir`, that folder becomes `validation_data_source`; without it, a spec that validated on
    its own (placeholder) `validation_data_source` falls back to `validation_fold: 0`, and a spec with
    `validation_fold` keeps it. `tfrecords_path` becomes `<folder>/tfrecords/*` (used by TAO only).
    The first data source's `source_weight` is kept.
    """
    out = Experiment()
    out.CopyFrom(spec)
    config = out.dataset_config
    weight = config.data_sources[0].source_weight if config.data_sources else 0.0
    del config.data_sources[:]
    train = Path(train_dir)
    source = config.data_sources.add()
    source.image_directory_path = str(train)
    source.tfrecords_path = _tfrecords_for(train)
    if weight:
        source.source_weight = weight
    if val_dir is not None:
        val = Path(val_dir)
        config.validation_data_source.image_directory_path = str(val)
        config.validation_data_source.tfrecords_path = _tfrecords_for(val)
    elif config.WhichOneof("dataset_split_type") == "validation_data_source":
        config.validation_fold = 0
    return out


def with_pretrained_model(spec: Experiment, path: str | Path) -> Experiment:
    """A copy whose `model_config.pretrained_model_file` is `path`."""
    out = Experiment()
    out.CopyFrom(spec)
    out.model_config.pretrained_model_file = str(path)
    return out
