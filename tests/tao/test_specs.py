"""Spec files rewritten to container paths (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_worker.errors import PermanentJobError, UserError
from gpu_worker.specs.loader import load_experiment_spec
from gpu_worker.tao.command import MountPlan
from gpu_worker.tao.specs import (
    TaoSpecInvalid,
    dataset_convert_spec,
    dataset_image_extension,
    experiment_for_container,
    load_experiment,
    summarize,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path) -> tuple[MountPlan, Path, Path]:
    dataset, work = tmp_path / "data", tmp_path / "work"
    (dataset / "images").mkdir(parents=True)
    work.mkdir()
    plan = MountPlan()
    plan.add(dataset, "/workspace/tao-experiments/data", read_only=True)
    plan.add(work, "/workspace/tao-experiments/results")
    return plan, dataset, work


def test_experiment_points_at_container_paths_and_keeps_the_rest(tmp_path: Path) -> None:
    plan, dataset, work = _plan(tmp_path)
    original = load_experiment_spec(REPO_ROOT / "specs" / "demo_cpu.txt")
    spec = experiment_for_container(
        original, plan, dataset_dir=dataset, tfrecords_dir=work / "prepare" / "tfrecords", image_extension=".png",
        pretrained_model=work / "prune" / "model.hdf5", load_graph=True,
    )  # fmt: skip
    assert [s.tfrecords_path for s in spec.dataset_config.data_sources] == [
        "/workspace/tao-experiments/results/prepare/tfrecords/kitti*"
    ]
    assert spec.dataset_config.image_extension == "png" and spec.dataset_config.validation_fold == 0
    assert spec.model_config.pretrained_model_file == "/workspace/tao-experiments/results/prune/model.hdf5"
    assert spec.model_config.load_graph
    assert spec.training_config == original.training_config
    assert spec.cost_function_config == original.cost_function_config
    assert summarize(spec).classes == ("person", "bag", "face") and summarize(spec).input_dims == (3, 192, 320)
    with pytest.raises(ValueError, match="not inside any folder mounted"):
        experiment_for_container(
            original, plan, dataset_dir=dataset, tfrecords_dir=work, image_extension="jpg",
            pretrained_model=tmp_path / "outside.hdf5",
        )  # fmt: skip


def test_dataset_convert_from_the_shipped_spec_or_generated(tmp_path: Path) -> None:
    plan, dataset, _work = _plan(tmp_path)
    experiment = load_experiment_spec(REPO_ROOT / "specs" / "demo_cpu.txt")
    shipped = dataset_convert_spec(
        REPO_ROOT / "specs" / "dataset_convert.txt", experiment, plan, dataset_dir=dataset, image_extension="jpg"
    )
    assert shipped.kitti_config.root_directory_path == shipped.image_directory_path == "/workspace/tao-experiments/data"
    assert shipped.kitti_config.image_extension == ".jpg" and shipped.kitti_config.val_split == 10
    generated = dataset_convert_spec(None, experiment, plan, dataset_dir=dataset, image_extension=".png")
    assert generated.kitti_config.num_partitions == 2 and generated.kitti_config.partition_mode == "random"
    assert dict(generated.target_class_mapping) == dict(experiment.dataset_config.target_class_mapping)


def test_bad_inputs_are_permanent_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("dataset_config { nonsense: 1 }\n")
    with pytest.raises(TaoSpecInvalid, match=r"bad.txt:1") as caught:
        load_experiment(bad)
    assert isinstance(caught.value, PermanentJobError) and isinstance(caught.value, UserError)
    (tmp_path / "images").mkdir()
    with pytest.raises(TaoSpecInvalid, match=r"no \.jpg/\.jpeg/\.png images"):
        dataset_image_extension(tmp_path)
    (tmp_path / "images" / "a.PNG").write_bytes(b"")
    (tmp_path / "images" / "b.png").write_bytes(b"")
    (tmp_path / "images" / "c.jpg").write_bytes(b"")
    assert dataset_image_extension(tmp_path) == ".png"
