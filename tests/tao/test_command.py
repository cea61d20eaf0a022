"""Container command lines, mounts and masking (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_worker.tao.command import MountPlan, SecretMasker, TaoInvocation, TaoTask, container_argv


def test_paths_translate_through_the_most_specific_mount(tmp_path: Path) -> None:
    work = tmp_path / "work"
    dataset = work / "fetch" / "dataset"
    dataset.mkdir(parents=True)
    plan = MountPlan()
    plan.add(work, "/workspace/tao-experiments/results")
    plan.add(dataset, "/workspace/tao-experiments/data", read_only=True)
    assert plan.container_path(dataset / "images") == "/workspace/tao-experiments/data/images"
    assert plan.container_path(work / "train" / "x.txt") == "/workspace/tao-experiments/results/train/x.txt"
    assert plan.container_path(work) == "/workspace/tao-experiments/results"
    assert plan.docker_volumes()[str(dataset.resolve())] == {"bind": "/workspace/tao-experiments/data", "mode": "ro"}
    with pytest.raises(ValueError, match="not inside any folder mounted"):
        plan.container_path(tmp_path / "elsewhere" / "model.hdf5")
    with pytest.raises(ValueError, match="already mounted"):
        plan.add(tmp_path, "/workspace/tao-experiments/data")


def test_key_goes_after_the_task_and_gpu_flags_follow_tao_rules(tmp_path: Path) -> None:
    plan = MountPlan()
    train = TaoInvocation(task=TaoTask.TRAIN, args=("-e", "/s.txt", "-r", "/r"), mounts=plan)
    assert container_argv(train, "KEY", None) == ["detectnet_v2", "train", "-k", "KEY", "-e", "/s.txt", "-r", "/r"]
    assert container_argv(train, "KEY", 2)[-5:] == ["--gpus", "2", "--gpu_index", "0", "1"]
    # Only train runs on several GPUs in TAO's entry point.
    prune = TaoInvocation(task=TaoTask.PRUNE, args=("-m", "/m"), mounts=plan)
    assert container_argv(prune, "KEY", 4)[-4:] == ["--gpus", "1", "--gpu_index", "0"]
    # dataset_convert has no -k; tao-converter takes no GPU flags and keeps its model last.
    convert = TaoInvocation(task=TaoTask.DATASET_CONVERT, args=("-d", "/d", "-o", "/o"), mounts=plan)
    assert container_argv(convert, "KEY", None) == ["detectnet_v2", "dataset_convert", "-d", "/d", "-o", "/o"]
    converter = TaoInvocation(task=TaoTask.TAO_CONVERTER, args=("-e", "/e", "/m.etlt"), mounts=plan)
    assert container_argv(converter, "KEY", 2) == ["tao-converter", "-k", "KEY", "-e", "/e", "/m.etlt"]
    assert TaoTask.GEN_TRT_ENGINE.argv_prefix == ("detectnet_v2", "gen_trt_engine")


def test_masker_hides_every_occurrence() -> None:
    masker = SecretMasker(["s3cr3t", ""])
    assert masker.mask("-k s3cr3t and again s3cr3ts3cr3t") == "-k **** and again ********"
    assert SecretMasker([]).mask("nothing") == "nothing"
