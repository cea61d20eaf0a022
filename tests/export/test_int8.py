"""INT8 QDQ export: loads in onnxruntime, symmetric int8 everywhere, outputs float and close to fp32;
the TensorRT calibration cache has the documented format."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.export.int8 import (
    CalibrationMethod,
    LetterboxCalibrationReader,
    quantize_qdq,
    write_calibration_cache,
    zero_point_violations,
)
from gpu_worker.export.onnx_export import export_onnx


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    plan = ChannelPlan.standard(10, 2)
    widths = {name: max(8, w // 8) for name, w in plan.widths.items()}
    widths.update(output_cov=2, output_bbox=8)
    model = DetectNetV2(ChannelPlan(10, True, 2, widths), use_batch_norm=False, activation="relu6").eval()
    fp32 = export_onnx(save_model(tmp / "m.pt", model, ["person", "bag"], (64, 96)), tmp / "m.onnx")
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):  # smooth random photos-like images of other sizes: letterboxed by the reader
        pixels = rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)
        path = tmp / f"img{i}.png"
        Image.fromarray(pixels).resize((200, 120), Image.Resampling.BILINEAR).save(path)
        images.append(path)
    int8 = quantize_qdq(fp32, tmp / "m_int8.onnx", images, method=CalibrationMethod.MINMAX)
    return fp32, int8.onnx, images


def test_qdq_loads_and_is_symmetric(int8_model: tuple[Path, Path, list[Path]]) -> None:
    fp32, int8, _ = int8_model
    graph = onnx.load(str(int8))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert zero_point_violations(int8) == []
    weights = [n for n in graph.graph.node if n.op_type == "DequantizeLinear" and "weight" in n.input[0]]
    assert weights and all(any(a.name == "axis" and a.i == 0 for a in n.attribute) for n in weights)  # per channel
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"]
    assert session.get_inputs()[0].name == "input_1:0"
    x = np.random.default_rng(1).random((1, 3, 64, 96), dtype=np.float32)
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(names, {"input_1:0": x})
    got = session.run(names, {"input_1:0": x})
    assert all(g.dtype == np.float32 for g in got)
    assert np.max(np.abs(got[0] - ref[0])) < 0.05


def _head_quantised(path: Path) -> tuple[bool, bool]:
    """(some head conv reads a dequantised activation, some head conv reads dequantised weights)."""
    graph = onnx.load(str(path)).graph
    dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    heads = [n for n in graph.node if n.op_type == "Conv" and ("output_cov" in n.name or "output_bbox" in n.name)]
    assert len(heads) == 2
    return any(n.input[0] in dequantised for n in heads), any(n.input[1] in dequantised for n in heads)


def test_heads_float_by_default_and_quantised_on_request(
    int8_model: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    fp32, int8, images = int8_model
    assert _head_quantised(int8) == (False, False)  # head convs wholly float
    graph = onnx.load(str(int8)).graph
    conv_outputs = {o for n in graph.node if n.op_type == "Conv" for o in n.output}
    quantised_tensors = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert not conv_outputs & quantised_tensors  # Q/DQ only at conv inputs (TensorRT placement), not after convs
    quantised = quantize_qdq(fp32, tmp_path / "q.onnx", images[:2], float_heads=False, float_first_conv=True)
    assert quantised.method is CalibrationMethod.MINMAX  # ReLU6 (Clip) model: bounded activations
    assert _head_quantised(quantised.onnx) == (True, True)
    assert zero_point_violations(quantised.onnx) == []
    graph = onnx.load(str(quantised.onnx)).graph
    first = next(n for n in graph.node if n.op_type == "Conv" and n.input[0] == "input_1:0")
    assert "input_1:0" not in quantised.activation_scales and first.input[0] == "input_1:0"  # conv1 float


def test_calibration_reader_windows(int8_model: tuple[Path, Path, list[Path]]) -> None:
    _, _, images = int8_model
    reader = LetterboxCalibrationReader(images, "x", (64, 96))
    assert len(reader) == 4
    reader.set_range(1, 3)  # onnxruntime's CalibStridedMinMax windows: image by image keeps memory flat
    batches = list(iter(reader.get_next, None))
    assert len(batches) == 2 and batches[0]["x"].shape == (1, 3, 64, 96)
    assert float(batches[0]["x"].max()) <= 1.0


def test_calibration_cache_format(int8_model: tuple[Path, Path, list[Path]], tmp_path: Path) -> None:
    fp32, _, _ = int8_model
    cache = write_calibration_cache(fp32, {"input_1:0": 1 / 127}, tmp_path / "cal.cache", trt_version="8601")
    lines = cache.read_text().splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    name, value = lines[1].split(": ")
    assert name == "input_1:0"
    assert struct.unpack(">f", bytes.fromhex(value))[0] == pytest.approx(1 / 127)
