"""The TAO runner against a real Docker engine and the stand-in images."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from gpu_worker.config import TaoSettings
from gpu_worker.errors import PermanentJobError, RetryableJobError, UserError
from gpu_worker.tao import (
    DockerUnavailable,
    GpuUnavailable,
    MountPlan,
    TaoImageMissing,
    TaoInvocation,
    TaoOutOfMemory,
    TaoProgress,
    TaoRunner,
    TaoStopped,
    TaoTask,
    TaoTaskFailed,
    TaoTimeout,
)

pytestmark = pytest.mark.docker


def _spec_files(tmp_path: Path, experiment_spec: Path, kitti_dataset: Path) -> MountPlan:
    results = tmp_path / "results"
    (results / "tfrecords").mkdir(parents=True)
    (results / "tfrecords" / "kitti-fold-000-of-002-shard-00000-of-00001").write_text("x")
    plan = MountPlan()
    plan.add(kitti_dataset, "/workspace/tao-experiments/data", read_only=True)
    plan.add(results, "/workspace/tao-experiments/results")
    return plan


def _train_invocation(tmp_path: Path, experiment_spec: Path, kitti_dataset: Path) -> TaoInvocation:
    """A train task whose spec points at container paths (as the backend writes it)."""
    from gpu_worker.specs.loader import load_experiment_spec
    from gpu_worker.tao.specs import experiment_for_container, write_spec_text

    plan = _spec_files(tmp_path, experiment_spec, kitti_dataset)
    results = tmp_path / "results"
    spec = experiment_for_container(
        load_experiment_spec(experiment_spec),
        plan,
        dataset_dir=kitti_dataset,
        tfrecords_dir=results / "tfrecords",
        image_extension=".jpg",
        pretrained_model=None,
    )
    spec_path = write_spec_text(spec, results / "spec.txt")
    args = ("-e", plan.container_path(spec_path), "-r", plan.container_path(results / "train"), "-n", "model")
    return TaoInvocation(task=TaoTask.TRAIN, args=args, mounts=plan)


def _containers(engine: Any) -> list[object]:
    return engine.client.containers.list(all=True)


def test_train_streams_masked_logs_and_progress_with_mounts_user_and_limits(
    docker_engine: Any,
    tao_settings: TaoSettings,
    tmp_path: Path,
    experiment_spec: Path,
    kitti_dataset: Path,
    caplog: pytest.LogCaptureFixture,
    tao_key: str,
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results").chmod(0o777)  # the container runs as another user
    settings = tao_settings.model_copy(update={"user": "1234:2345"})
    invocation = _train_invocation(tmp_path, experiment_spec, kitti_dataset)
    lines: list[str] = []
    progress: list[TaoProgress] = []
    caplog.set_level("DEBUG")
    runner = TaoRunner(settings, docker_engine.client)
    result = runner.run(invocation, on_line=lines.append, on_progress=progress.append)

    assert result.exit_code == 0
    text = "\n".join(lines)
    # The stand-in echoes its arguments, key included: every line we pass on is masked.
    assert "-k ****" in text and tao_key not in text and tao_key not in caplog.text
    assert "standin: uid=1234 gid=2345 cwd=/workspace/tao-experiments role=train" in text
    assert f"stack={67108864 // 1024}" in text
    memlock = settings.ulimits["memlock"]
    assert f"memlock={'unlimited' if memlock == -1 else memlock // 1024}" in text
    assert "shm_kb=65536" in text
    assert "standin: mount /workspace/tao-experiments/data ro" in text
    assert "standin: mount /workspace/tao-experiments/results rw" in text
    model = tmp_path / "results" / "train" / "weights" / "model.hdf5"
    assert model.is_file() and model.stat().st_uid == 1234
    epochs = [(p.epoch, p.total_epochs, p.loss) for p in progress if p.loss is not None and p.total_epochs]
    assert epochs[0] == (1.0, 3, pytest.approx(0.084473)) and epochs[-1][:2] == (3.0, 3)
    assert any(p.mean_ap == pytest.approx(0.403805) for p in progress)
    assert result.parser.finish() == {
        "AP/person": 0.525,
        "AP/bag": 0.282611,
        "AP/face": 0.282611,
        "mAP": pytest.approx(0.403805),
    }
    assert _containers(docker_engine) == []  # removed afterwards


def test_failure_maps_to_task_failed_with_last_lines_and_no_key(
    docker_engine: Any,
    tao_settings: TaoSettings,
    tmp_path: Path,
    experiment_spec: Path,
    kitti_dataset: Path,
    tao_key: str,
) -> None:
    settings = tao_settings.model_copy(update={"env": {"STANDIN_FAIL": "train"}})
    with pytest.raises(TaoTaskFailed) as caught:
        TaoRunner(settings, docker_engine.client).run(_train_invocation(tmp_path, experiment_spec, kitti_dataset))
    error = caught.value
    assert isinstance(error, PermanentJobError) and error.exit_code == 1
    assert "ValueError: stand-in failure requested for train" in str(error)
    assert "exit code 1" in str(error) and "-k ****" in str(error)
    assert tao_key not in str(error) and all(tao_key not in line for line in error.last_lines)
    assert _containers(docker_engine) == []


def test_bad_arguments_fail_like_tao(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, kitti_dataset: Path
) -> None:
    plan = MountPlan()
    plan.add(kitti_dataset, "/workspace/tao-experiments/data", read_only=True)
    invocation = TaoInvocation(
        task=TaoTask.EVALUATE, args=("-e", "/workspace/tao-experiments/data/nope.txt"), mounts=plan
    )
    with pytest.raises(TaoTaskFailed, match=r"file not found: /workspace/tao-experiments/data/nope\.txt"):
        TaoRunner(tao_settings, docker_engine.client).run(invocation)


def test_missing_image_says_how_to_login_and_pull(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"train_image": "nvcr.io/nvidia/tao/tao-toolkit:5.0.0-tf1.15.5"})
    with pytest.raises(TaoImageMissing) as caught:
        TaoRunner(settings, docker_engine.client).run(_train_invocation(tmp_path, experiment_spec, kitti_dataset))
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, PermanentJobError)
    assert "docker login nvcr.io" in message and "docker pull nvcr.io/nvidia/tao/tao-toolkit:5.0.0-tf1.15.5" in message
    assert "PEOPLENET_TAO__TRAIN_IMAGE" in message
    assert _containers(docker_engine) == []


def test_gpu_request_without_gpu_runtime(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"use_gpus": True, "gpu_ids": [0]})
    with pytest.raises(GpuUnavailable) as caught:
        TaoRunner(settings, docker_engine.client).run(_train_invocation(tmp_path, experiment_spec, kitti_dataset))
    assert "could not select device driver" in str(caught.value)
    assert "NVIDIA container toolkit" in str(caught.value) and "PEOPLENET_TAO__USE_GPUS=false" in str(caught.value)
    assert _containers(docker_engine) == []  # the Created container is removed too


def test_out_of_memory(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"memory_limit": "24m", "env": {"STANDIN_OOM": "train"}})
    with pytest.raises(TaoOutOfMemory) as caught:
        TaoRunner(settings, docker_engine.client).run(_train_invocation(tmp_path, experiment_spec, kitti_dataset))
    assert caught.value.exit_code == 137 and "OOM-killed" in str(caught.value)
    assert "batch_size_per_gpu" in str(caught.value)


def test_hard_timeout_kills_and_removes(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"env": {"STANDIN_HANG": "train"}, "timeout_s": 2})
    started = time.monotonic()
    with pytest.raises(TaoTimeout) as caught:
        TaoRunner(settings, docker_engine.client).run(_train_invocation(tmp_path, experiment_spec, kitti_dataset))
    assert time.monotonic() - started < 15
    assert "standin: train hangs" in caught.value.last_lines
    assert "hard timeout of 2 s" in str(caught.value)
    assert _containers(docker_engine) == []


def test_stop_request_stops_the_container(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"env": {"STANDIN_HANG": "train"}})
    seen: list[str] = []
    started = time.monotonic()
    with pytest.raises(TaoStopped):
        TaoRunner(settings, docker_engine.client).run(
            _train_invocation(tmp_path, experiment_spec, kitti_dataset),
            on_line=seen.append,
            should_stop=lambda: "standin: train hangs" in seen,
        )
    assert time.monotonic() - started < 15
    assert _containers(docker_engine) == []


def test_docker_not_reachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    plan = MountPlan()
    plan.add(tmp_path, PurePosixPath("/workspace/tao-experiments/results"))
    with pytest.raises(DockerUnavailable) as caught:
        TaoRunner(TaoSettings(use_gpus=False)).run(TaoInvocation(task=TaoTask.TRAIN, args=(), mounts=plan))
    assert isinstance(caught.value, RetryableJobError) and "absent.sock" in str(caught.value)
