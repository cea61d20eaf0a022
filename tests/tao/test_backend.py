"""The `tao` backend end to end on the stand-in images, and the engine functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from gpu_worker.backends.base import ModelArtifact, StageContext, TrainingStopped
from gpu_worker.backends.tao_backend import TaoBackend, run_tao_job
from gpu_worker.config import Settings, TaoSettings
from gpu_worker.specs.loader import load_dataset_convert_spec, load_experiment_spec
from gpu_worker.tao import TaoRunner, TaoTaskFailed, gen_trt_engine, tao_converter
from peoplenet_contracts import RetrainJob, TrainingBackend

pytestmark = pytest.mark.docker


def _job(prune: bool = True) -> RetrainJob:
    return RetrainJob(
        job_id="tao-job-1",
        dataset="people",
        dataset_version="v1",
        dataset_prefix="datasets/people/v1/",
        manifest_key="datasets/people/v1/manifest.json",
        backend=TrainingBackend.TAO,
        prune=prune,
    )


def _context(tmp_path: Path, dataset: Path, spec: Path, progress: list[str], **kwargs: object) -> StageContext:
    return StageContext(
        job=_job(),
        work_dir=tmp_path / "work",
        dataset_dir=dataset,
        spec_path=spec,
        progress=progress.append,
        **kwargs,  # type: ignore[arg-type]
    )


def test_whole_job_end_to_end(
    docker_engine: Any,
    tao_settings: TaoSettings,
    tmp_path: Path,
    experiment_spec: Path,
    kitti_dataset: Path,
    tao_key: str,
) -> None:
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    base_model = base_dir / "peoplenet.hdf5"
    base_model.write_text("standin-hdf5 base\n")
    progress: list[str] = []
    ctx = _context(tmp_path, kitti_dataset, experiment_spec, progress)
    runner = TaoRunner(tao_settings, docker_engine.client)
    result = run_tao_job(ctx, Settings(tao=tao_settings), base_model=base_model, runner=runner)
    work = tmp_path / "work"

    # prepare: the dataset_convert spec sees the dataset at its container path; shards where TAO puts them
    convert = load_dataset_convert_spec(work / "prepare" / "tao" / "dataset_convert.txt", resolve_paths=False)
    assert convert.kitti_config.root_directory_path == "/workspace/tao-experiments/data"
    assert convert.kitti_config.image_extension == ".jpg" and convert.kitti_config.num_partitions == 2
    assert dict(convert.target_class_mapping)["backpack"] == "bag"
    assert len(list((work / "prepare" / "tao" / "tfrecords").glob("kitti-fold-00[01]-of-002-shard-*"))) == 20

    # train: spec rewritten to container paths, base model mounted read-only from outside the work folder
    train_spec = load_experiment_spec(work / "train" / "tao_spec.txt", resolve_paths=False)
    source = train_spec.dataset_config.data_sources[0]
    assert source.tfrecords_path == "/workspace/tao-experiments/results/prepare/tao/tfrecords/kitti*"
    assert source.image_directory_path == "/workspace/tao-experiments/data"
    assert train_spec.dataset_config.validation_fold == 0
    assert train_spec.model_config.pretrained_model_file == "/workspace/tao-experiments/models/0/peoplenet.hdf5"
    train_log = (work / "train" / "train.log").read_text()
    assert "standin: mount /workspace/tao-experiments/models/0 ro" in train_log
    assert (
        "trained from: /workspace/tao-experiments/models/0/peoplenet.hdf5"
        in (work / "train" / "weights" / "model.hdf5").read_text()
    )

    # prune -> retrain from the pruned model with load_graph: true (the stand-in refuses otherwise)
    assert "threshold 5.2e-06" in (work / "prune" / "model.hdf5").read_text()
    retrain_spec = load_experiment_spec(work / "retrain" / "tao_spec.txt", resolve_paths=False)
    assert retrain_spec.model_config.pretrained_model_file == "/workspace/tao-experiments/results/prune/model.hdf5"
    assert retrain_spec.model_config.load_graph
    assert (work / "retrain" / "weights" / "model.hdf5").is_file()
    history = json.loads((work / "retrain" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0] and history[-1]["mAP"] == pytest.approx(0.403805)
    assert history[0] == {"epoch": 1.0, "loss": 0.084473, "learning_rate": 0.0005}

    # evaluate -> metrics; export -> normalised artefacts
    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    assert metrics == {"AP/bag": 0.282611, "AP/face": 0.282611, "AP/person": 0.525, "mAP": pytest.approx(0.403805)}
    assert result.onnx == work / "export" / "model.onnx" and result.etlt is None
    assert [i.name for i in onnx.load(str(result.onnx)).graph.input] == ["input_1:0"]  # TAO 5's ONNX contract
    assert (
        "standin: exported /workspace/tao-experiments/results/retrain/weights/"
        in (work / "export" / "export.log").read_text()
    )
    assert result.labels.read_text() == "person\nbag\nface\n"
    assert result.classes == ("person", "bag", "face") and result.input_dims == (3, 192, 320)

    # the job saw progress; the key appears in no log file and no progress message
    assert progress.count("epoch 3/3 loss=0.064473 lr=0.0005") == 2  # train and retrain
    assert "validation epoch 3/3 mAP=0.4038" in progress
    assert any(m.startswith("metrics AP/bag=0.2826") for m in progress)
    logs = list(work.rglob("*.log"))
    assert {p.parent.name for p in logs} == {"prepare", "train", "prune", "retrain", "evaluate", "export"}
    for path in logs:
        assert tao_key not in path.read_text()
    assert all(tao_key not in m for m in progress)
    assert docker_engine.client.containers.list(all=True) == []


def test_stop_during_train_then_resume_from_checkpoint(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    slow = tao_settings.model_copy(update={"env": {"STANDIN_SLEEP": "0.3"}})
    progress: list[str] = []
    ctx = _context(
        tmp_path, kitti_dataset, experiment_spec, progress, should_stop=lambda: any("epoch 1/3" in m for m in progress)
    )
    backend = TaoBackend(slow, TaoRunner(slow, docker_engine.client))
    backend.prepare(ctx)
    with pytest.raises(TrainingStopped) as caught:
        backend.train(ctx, None)
    assert caught.value.checkpoint == tmp_path / "work" / "train"
    assert (tmp_path / "work" / "train" / "model.epoch-1.ckzip").is_file()

    ctx.should_stop = lambda: False
    model = backend.train(ctx, None)
    log = (tmp_path / "work" / "train" / "train.log").read_text()
    assert "standin: SIGTERM, training interrupted" in log
    assert "standin: resuming from model.epoch-1.ckzip" in log
    assert model.path == tmp_path / "work" / "train" / "weights" / "model.hdf5"
    assert model.num_params == 1234567
    assert "trained from: scratch" in model.path.read_text()
    history = json.loads((tmp_path / "work" / "train" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0]  # epochs before the stop kept


def test_export_reruns_cleanly_in_etlt_format(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"export_format": "etlt"})
    backend = TaoBackend(settings, TaoRunner(settings, docker_engine.client))
    ctx = _context(tmp_path, kitti_dataset, experiment_spec, [])
    backend.prepare(ctx)
    model = ModelArtifact(path=tmp_path / "work" / "train" / "weights" / "model.tlt")
    model.path.parent.mkdir(parents=True)
    model.path.write_text("standin-tlt\n")
    first = backend.export(ctx, model)
    second = backend.export(ctx, model)  # TAO refuses to overwrite: the backend clears its own output
    assert first.etlt == second.etlt == tmp_path / "work" / "export" / "model.etlt" and second.onnx is None
    cal = backend.calibration_tensorfile(ctx, model, max_batches=4)
    assert cal.read_text() == "4 batches\n"


def test_stage_failure_is_permanent_with_the_task_output(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    settings = tao_settings.model_copy(update={"env": {"STANDIN_FAIL": "prune"}})
    backend = TaoBackend(settings, TaoRunner(settings, docker_engine.client))
    ctx = _context(tmp_path, kitti_dataset, experiment_spec, [])
    model = tmp_path / "work" / "train" / "weights" / "model.hdf5"
    model.parent.mkdir(parents=True)
    model.write_text("standin-hdf5\n")
    with pytest.raises(TaoTaskFailed, match="stand-in failure requested for prune"):
        backend.prune(ctx, ModelArtifact(path=model))


def test_engines_through_deploy_and_converter_images(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, tao_key: str
) -> None:
    runner = TaoRunner(tao_settings, docker_engine.client)
    model_dir = tmp_path / "export"
    model_dir.mkdir()
    onnx = model_dir / "model.onnx"
    onnx.write_text("standin-onnx\n")
    lines: list[str] = []
    fp16 = gen_trt_engine(
        onnx, tmp_path / "engines", tao_settings, precision="fp16", runner=runner, on_line=lines.append
    )
    assert fp16.engine.read_text() == "standin-engine fp16 from /workspace/tao-experiments/model/model.onnx\n"
    assert fp16.calibration_cache is None
    assert any("role=deploy" in line for line in lines)  # gen_trt_engine ran in the deploy image
    assert any("-k ****" in line for line in lines) and not any(tao_key in line for line in lines)

    calib = tmp_path / "calib"
    calib.mkdir()
    int8 = gen_trt_engine(
        onnx,
        tmp_path / "engines8",
        tao_settings,
        precision="int8",
        cal_image_dir=calib,
        runner=runner,
        on_line=lines.append,
    )
    assert int8.calibration_cache is not None and int8.calibration_cache.read_text().startswith("TRT-")

    etlt = model_dir / "model.etlt"
    etlt.write_text("standin-etlt\n")
    engine = tao_converter(
        etlt, tmp_path / "jetson" / "peoplenet.engine", tao_settings, runner=runner, on_line=lines.append
    )
    expected = "standin-engine fp16 3,544,960 from /workspace/tao-experiments/model/model.etlt\n"
    assert engine.engine.read_text() == expected
    with pytest.raises(ValueError, match="cal_cache"):
        tao_converter(etlt, tmp_path / "x.engine", tao_settings, precision="int8", runner=runner)


def test_models_stored_under_other_names_reach_tao_with_their_format(
    docker_engine: Any, tao_settings: TaoSettings, tmp_path: Path, experiment_spec: Path, kitti_dataset: Path
) -> None:
    """A pipeline that keeps every stage's model as model.pt still hands TAO a .hdf5 / .tlt file."""
    backend = TaoBackend(tao_settings, TaoRunner(tao_settings, docker_engine.client))
    ctx = _context(tmp_path, kitti_dataset, experiment_spec, [])
    backend.prepare(ctx)
    stored = tmp_path / "work" / "train" / "model.pt"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x89HDF\r\n\x1a\nstandin-hdf5\n")
    pruned = backend.prune(ctx, ModelArtifact(path=stored))
    assert pruned.path == tmp_path / "work" / "prune" / "model.hdf5" and pruned.num_params == 400000
    assert (tmp_path / "work" / "prune" / "input_model.hdf5").read_bytes() == stored.read_bytes()

    encrypted = tmp_path / "work" / "retrain" / "model.pt"
    encrypted.parent.mkdir(parents=True)
    encrypted.write_bytes(b"encrypted tlt bytes")
    ctx.extra["results_dir"] = str(tmp_path / "work" / "evaluate" / "production")
    metrics = backend.evaluate(ctx, ModelArtifact(path=encrypted))
    assert metrics["mAP"] == pytest.approx(0.403805)
    production = tmp_path / "work" / "evaluate" / "production"
    assert json.loads((production / "metrics.json").read_text()) == metrics
    assert (production / "evaluate.log").is_file() and not (tmp_path / "work" / "evaluate" / "metrics.json").exists()
    assert (tmp_path / "work" / "evaluate" / "input_model.tlt").is_file()
