"""The generated nvinfer config agrees with labels, classes, dims and precision, or is refused."""

from __future__ import annotations

import configparser
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from engine_testkit import CLASSES, DIMS, make_model_dir

from gpu_worker.deepstream import DeepStreamConfigError, write_deepstream_config
from peoplenet_contracts import EngineManifest, Precision


def engine_for(model_dir: Path, source: str = "model.onnx", **overrides: object) -> EngineManifest:
    fields: dict[str, object] = {
        "platform": "sm87-trt8.5-aarch64", "model_version": "v1", "builder": "trtexec", "tensorrt_version": "8.5.2",
        "compute_capability": "8.7", "precision": Precision.FP16, "input_name": "input_1:0", "input_dims": DIMS,
        "min_batch": 1, "opt_batch": 2, "max_batch": 4,
        "output_names": ["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"],
        "source_model_sha256": hashlib.sha256((model_dir / source).read_bytes()).hexdigest(),
        "engine_sha256": "0" * 64,
    }  # fmt: skip
    fields.update(overrides)
    return EngineManifest.model_validate(fields)


def read_config(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    return parser


def test_config_from_model_and_engine(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_model_dir(model, "v1")
    files = write_deepstream_config(model, tmp_path / "ds", engine_for(model))
    config = read_config(files.config)
    prop = config["property"]
    assert prop["num-detected-classes"] == "3"
    assert prop["infer-dims"] == "3;32;48"
    assert prop["network-mode"] == "2"  # fp16
    assert prop["output-blob-names"] == "output_cov/Sigmoid:0;output_bbox/BiasAdd:0"
    assert prop["net-scale-factor"] == "0.0039215697906911373"
    assert (prop["model-color-format"], prop["maintain-aspect-ratio"], prop["cluster-mode"]) == ("0", "1", "2")
    assert (prop["model-engine-file"], prop["onnx-file"], prop["batch-size"]) == ("peoplenet.engine", "model.onnx", "2")
    assert files.labels.read_text().splitlines() == ["Person", "Bag", "Face"]
    assert (tmp_path / "ds" / "model.onnx").read_bytes() == (model / "model.onnx").read_bytes()
    # Clustering from the spec: person max(0.005, 0.3), face 0.1; bag (absent) gets defaults.
    assert config["class-attrs-0"]["pre-cluster-threshold"] == "0.3"
    assert config["class-attrs-0"]["nms-iou-threshold"] == "0.45"
    assert config["class-attrs-0"]["detected-min-h"] == "20"
    assert config["class-attrs-1"]["pre-cluster-threshold"] == "0.2"
    assert config["class-attrs-2"]["nms-iou-threshold"] == "0.6"
    assert sorted(s for s in config.sections() if s.startswith("class-attrs")) == [f"class-attrs-{i}" for i in range(3)]


def test_int8_engine_and_no_engine_modes(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_model_dir(model, "v1", qdq=True, spec=False)
    int8 = engine_for(model, "model_int8.onnx", precision=Precision.INT8)
    prop = read_config(write_deepstream_config(model, tmp_path / "a", int8).config)["property"]
    assert (prop["network-mode"], prop["onnx-file"]) == ("1", "model_int8.onnx")
    # Published config without an engine: nvinfer builds from the ONNX, so no model-engine-file.
    prop = read_config(write_deepstream_config(model, model).config)["property"]
    assert "model-engine-file" not in prop and prop["network-mode"] == "1"


@pytest.mark.parametrize(
    ("model_kwargs", "engine_overrides", "message"),
    [
        ({"labels": ["Person", "Bag"]}, {}, "labels"),
        ({"labels": ["Bag", "Person", "Face"]}, {}, "channel order"),
        ({"head_classes": 2}, {}, "coverage head has 2 channels"),
        ({}, {"input_dims": (3, 544, 960)}, "engine takes"),
        ({}, {"output_names": ["output_cov/Sigmoid:0"]}, "lacks outputs"),
        ({}, {"min_batch": 4, "opt_batch": 4, "max_batch": 8}, "outside the engine's range"),
        ({}, {"model_version": "v0"}, "for model v0"),
        ({}, {"source_model_sha256": "1" * 64}, "built from a model"),
    ],
)
def test_mismatches_are_refused(
    tmp_path: Path, model_kwargs: dict[str, object], engine_overrides: dict[str, object], message: str
) -> None:
    model = tmp_path / "model"
    make_model_dir(model, "v1", **model_kwargs)  # type: ignore[arg-type]
    with pytest.raises(DeepStreamConfigError, match=message):
        write_deepstream_config(model, tmp_path / "ds", engine_for(model, **engine_overrides), batch_size=2)
    assert not (tmp_path / "ds").exists()


def test_trained_resolution_must_match_the_onnx(tmp_path: Path) -> None:
    model = tmp_path / "model"
    manifest = make_model_dir(model, "v1")
    wrong = manifest.model_copy(update={"input_dims": (3, 544, 960)})
    with pytest.raises(DeepStreamConfigError, match="trained at"):
        write_deepstream_config(model, tmp_path / "ds", manifest=wrong)


def test_cli_writes_config_and_refuses_cleanly(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_model_dir(model, "v1")
    (tmp_path / "engine.json").write_text(engine_for(model).to_json())
    cli = [sys.executable, "-m", "gpu_worker.cli", "deepstream-config", str(model), "-o", str(tmp_path / "ds")]
    ok = subprocess.run([*cli, "--engine-json", str(tmp_path / "engine.json")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ds" / "config_infer_primary_peoplenet.txt").is_file()
    (model / "labels.txt").write_text("Person\n")
    bad = subprocess.run(cli, capture_output=True, text=True)
    assert bad.returncode == 2 and "labels" in bad.stderr and "Traceback" not in bad.stderr
    assert len(CLASSES) == 3
