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
from gpu_worker.export.int8 import CalibrationMethod, quantize_qdq, write_calibration_cache, zero_point_violations
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


def test_calibration_cache_format(int8_model: tuple[Path, Path, list[Path]], tmp_path: Path) -> None:
    fp32, _, _ = int8_model
    cache = write_calibration_cache(fp32, {"input_1:0": 1 / 127}, tmp_path / "cal.cache", trt_version="8601")
    lines = cache.read_text().splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    name, value = lines[1].split(": ")
    assert name == "input_1:0"
    assert struct.unpack(">f", bytes.fromhex(value))[0] == pytest.approx(1 / 127)
