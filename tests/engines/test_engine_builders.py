"""Builders at the process boundary: test-double trtexec / tao-converter executables record their argv."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from engine_testkit import DIMS, calls, facts, make_detectnet_onnx, make_model_dir, make_tool

from gpu_worker.engines import (
    BuildRequest,
    BuildRequestError,
    EngineBuildError,
    EngineOutcome,
    HardwareCompatibility,
    ModelFormatError,
    build_local_engine,
    select_builder,
)
from gpu_worker.engines.onnx_io import read_signature
from gpu_worker.engines.tao_converter import TaoConverterBuilder
from gpu_worker.engines.tensorrt_api import calibration_algorithm
from gpu_worker.engines.trtexec import TrtexecBuilder
from peoplenet_contracts import EngineManifest, Precision


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    return make_detectnet_onnx(tmp_path / "model" / "model.onnx")


def test_onnx_signature_matches_onnx_library(tmp_path: Path) -> None:
    import onnx

    path = make_detectnet_onnx(tmp_path / "m.onnx", qdq=True)
    signature = read_signature(path)
    graph = onnx.load(path).graph
    assert [t.name for t in signature.outputs] == [o.name for o in graph.output]
    assert signature.input.name == "input_1:0" and signature.input.dims == ("N", *DIMS)
    assert signature.input_chw() == DIMS
    assert (signature.channels("cov"), signature.channels("bbox")) == (3, 12)
    assert signature.has_qdq and not read_signature(make_detectnet_onnx(tmp_path / "f.onnx")).has_qdq
    (tmp_path / "bad.onnx").write_bytes(b"\xff\xff\xff not protobuf")
    with pytest.raises(ModelFormatError, match="not a readable ONNX"):
        read_signature(tmp_path / "bad.onnx")


def test_trtexec_fp16_argv_manifest_and_engine_json(tmp_path: Path, onnx_model: Path) -> None:
    log = tmp_path / "argv.jsonl"
    tool = make_tool(tmp_path / "bin", "trtexec", log, banner="8601")
    builder = TrtexecBuilder(facts("8.6", "8.6.1.6", "x86_64", trtexec=tool))
    timing = tmp_path / "timing.cache"
    request = BuildRequest(
        model_version="v1", max_batch=8, opt_batch=2, workspace_mib=1024, timing_cache=timing,
        hardware_compatibility=HardwareCompatibility.AMPERE_PLUS,
    )  # fmt: skip
    manifest = builder.build(onnx_model, tmp_path / "out", request)
    (argv,) = calls(log)
    engine = tmp_path / "out" / "peoplenet.engine"
    assert argv == [
        f"--onnx={onnx_model}",
        f"--saveEngine={tmp_path / 'out' / '.peoplenet.engine.partial'}",
        "--minShapes=input_1:0:1x3x32x48",
        "--optShapes=input_1:0:2x3x32x48",
        "--maxShapes=input_1:0:8x3x32x48",
        "--fp16",
        "--memPoolSize=workspace:1024",
        "--hardwareCompatibilityLevel=ampere+",
        f"--timingCacheFile={timing}",
        "--skipInference",
    ]
    assert manifest.platform == "sm86-trt8.6-x86_64" and manifest.precision is Precision.FP16
    assert manifest.output_names == ["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"]
    assert (manifest.min_batch, manifest.opt_batch, manifest.max_batch) == (1, 2, 8)
    assert manifest.engine_sha256 == hashlib.sha256(engine.read_bytes()).hexdigest()
    assert manifest.source_model_sha256 == hashlib.sha256(onnx_model.read_bytes()).hexdigest()
    assert EngineManifest.from_json((tmp_path / "out" / "engine.json").read_text()) == manifest
    assert not (tmp_path / "out" / ".peoplenet.engine.partial").exists()


def test_trtexec_int8_from_qdq_and_from_cache(tmp_path: Path) -> None:
    log = tmp_path / "argv.jsonl"
    tool = make_tool(tmp_path / "bin", "trtexec", log)  # TensorRT 8.5: older flag names
    builder = TrtexecBuilder(facts(trtexec=tool))
    qdq = make_detectnet_onnx(tmp_path / "model_int8.onnx", qdq=True)
    plain = make_detectnet_onnx(tmp_path / "model.onnx")
    cache = tmp_path / "calibration.cache"
    cache.write_text("TRT-8502-EntropyCalibration2\ninput_1:0: 3c010a14\n")
    assert builder.build(qdq, tmp_path / "a", BuildRequest("v1", Precision.INT8)).precision is Precision.INT8
    builder.build(plain, tmp_path / "b", BuildRequest("v1", Precision.INT8, calibration_cache=cache))
    first, second = calls(log)
    assert "--int8" in first and "--fp16" in first and not any(a.startswith("--calib") for a in first)
    assert f"--calib={cache}" in second and "--int8" in second
    assert "--buildOnly" in first and "--memPoolSize=workspace:2048" in first
    assert calibration_algorithm(cache.read_bytes()) == "EntropyCalibration2"


def test_requests_the_model_cannot_satisfy_are_refused_before_running(tmp_path: Path, onnx_model: Path) -> None:
    log = tmp_path / "argv.jsonl"
    builder = TrtexecBuilder(facts(trtexec=make_tool(tmp_path / "bin", "trtexec", log)))
    with pytest.raises(BuildRequestError, match="needs Q/DQ nodes"):
        builder.build(onnx_model, tmp_path / "out", BuildRequest("v1", Precision.INT8))
    with pytest.raises(BuildRequestError, match="takes input"):
        builder.build(onnx_model, tmp_path / "out", BuildRequest("v1", input_dims=(3, 544, 960)))
    qdq = make_detectnet_onnx(tmp_path / "q.onnx", qdq=True)
    with pytest.raises(BuildRequestError, match="only as int8"):
        builder.build(qdq, tmp_path / "out", BuildRequest("v1", Precision.FP16))
    with pytest.raises(BuildRequestError, match="batch range"):
        BuildRequest("v1", min_batch=4, opt_batch=2)
    assert calls(log) == [] and not (tmp_path / "out" / "engine.json").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fail": True}, "exited with code 1"),
        ({"write": False}, "wrote no engine"),
        ({"banner": "8601"}, "TensorRT 8.6"),
    ],
)
def test_failed_builds_leave_no_engine(
    tmp_path: Path, onnx_model: Path, kwargs: dict[str, object], message: str
) -> None:
    tool = make_tool(tmp_path / "bin", "trtexec", tmp_path / "argv.jsonl", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(EngineBuildError, match=message):
        TrtexecBuilder(facts(trtexec=tool)).build(onnx_model, tmp_path / "out", BuildRequest("v1"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_tao_converter_for_etlt(tmp_path: Path) -> None:
    log = tmp_path / "argv.jsonl"
    tool = make_tool(tmp_path / "bin", "tao-converter", log)
    etlt = tmp_path / "model.etlt"
    etlt.write_bytes(b"encrypted etlt bytes")
    cache = tmp_path / "cal.bin"
    cache.write_text("TRT-8502-EntropyCalibration2\n")
    builder = TaoConverterBuilder(facts(tao_converter=tool))
    request = BuildRequest("v1", Precision.INT8, calibration_cache=cache, input_dims=(3, 544, 960), max_batch=16)
    manifest = builder.build(etlt, tmp_path / "out", request)
    (argv,) = calls(log)
    partial = str(tmp_path / "out" / ".peoplenet.engine.partial")
    assert argv == [
        "-k", "tlt_encode", "-d", "3,544,960", "-t", "int8", "-m", "16", "-w", str(2048 << 20), "-e", partial,
        "-c", str(cache), "-o", "output_cov/Sigmoid,output_bbox/BiasAdd", str(etlt),
    ]  # fmt: skip
    assert manifest.builder == "tao-converter" and manifest.input_name == "input_1"
    assert manifest.output_names == ["output_cov/Sigmoid", "output_bbox/BiasAdd"]
    with pytest.raises(BuildRequestError, match="needs input_dims"):
        builder.build(etlt, tmp_path / "out2", BuildRequest("v1"))


def test_select_builder(tmp_path: Path) -> None:
    tool = make_tool(tmp_path / "bin", "trtexec", tmp_path / "log")
    assert select_builder(facts(trt=None)) is None  # type: ignore[arg-type]
    assert isinstance(select_builder(facts(trtexec=tool)), TrtexecBuilder)
    assert select_builder(facts()) is None  # TensorRT known from dpkg, but no tool to build with
    assert isinstance(select_builder(facts(tao_converter=tool), ".etlt"), TaoConverterBuilder)


def test_build_local_engine_for_the_pipeline(tmp_path: Path) -> None:
    export = tmp_path / "export"
    make_model_dir(export, "v1")
    status = build_local_engine(export, tmp_path / "engines", "v1", facts=facts(trt=None))  # type: ignore[arg-type]
    assert status.outcome is EngineOutcome.NO_BUILDER and not status.built
    assert "no TensorRT on this host: ONNX published, build on the target with the agent" in status.message
    assert not (tmp_path / "engines").exists()
    tool = make_tool(tmp_path / "bin", "trtexec", tmp_path / "argv.jsonl")
    status = build_local_engine(export, tmp_path / "engines", "v1", facts=facts(trtexec=tool))
    assert status.built and json.loads(json.dumps(status.as_dict()))["platform"] == "sm87-trt8.5-aarch64"
    assert (tmp_path / "engines" / "sm87-trt8.5-aarch64" / "engine.json").is_file()
    failing = make_tool(tmp_path / "bin2", "trtexec", tmp_path / "argv2.jsonl", fail=True)
    status = build_local_engine(export, tmp_path / "engines2", "v1", facts=facts(trtexec=failing))
    assert status.outcome is EngineOutcome.FAILED and "exited with code 1" in status.message


@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="tensorrt does not import here")
def test_tensorrt_python_builds_a_real_engine(tmp_path: Path, onnx_model: Path) -> None:
    from gpu_worker.engines.platform import detect_platform
    from gpu_worker.engines.tensorrt_api import TensorRTBuilder

    host = detect_platform()
    manifest = TensorRTBuilder(host).build(onnx_model, tmp_path / "out", BuildRequest("v1", Precision.FP16))
    assert manifest.platform == host.platform_key
    assert (tmp_path / "out" / "peoplenet.engine").stat().st_size > 1000
