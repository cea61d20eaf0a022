"""Quantisation-aware training: the fake quantisation is symmetric int8 per channel with a straight-through
gradient, batch norm folds exactly, the torch QAT forward is what the exported QDQ ONNX computes, and the
QAT scales travel through the model file, resume and INT8 export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gpu_worker.detection.channel_plan import HEAD_LAYERS, ChannelPlan
from gpu_worker.detection.checkpoint import load_model, save_atomic
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.export.int8 import CalibrationMethod, conv_input_tensors, export_int8, zero_point_violations
from gpu_worker.export.onnx_export import INPUT_NAME, export_onnx
from gpu_worker.training import qat
from gpu_worker.training.letterbox import load_image_letterboxed
from gpu_worker.training.qat_finetune import quantization_aware_finetune
from gpu_worker.training.train import train

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "coco-people" / "images"
INPUT_HW = (96, 160)


def _images(folder: Path, count: int, hw: tuple[int, int] = INPUT_HW) -> np.ndarray:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:count]
    return np.stack([load_image_letterboxed(p, hw[1], hw[0])[0] for p in paths])  # [N, H, W, 3] uint8


def _bn_model(seed: int = 0) -> DetectNetV2:
    """A quarter-width ResNet-10, ReLU6, batch norm with non-trivial statistics (as after training)."""
    torch.manual_seed(seed)
    standard = ChannelPlan.standard(10, 1)
    widths = {k: (v if k.startswith("output_") else v // 4) for k, v in standard.widths.items()}
    model = DetectNetV2(ChannelPlan(10, True, 1, widths), use_batch_norm=True, activation="relu6")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)  # type: ignore[operator]
            module.running_var.uniform_(0.5, 2.0)  # type: ignore[operator]
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.3)
    return model.eval()


def _to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def test_fake_quantize_is_symmetric_per_channel_int8() -> None:
    torch.manual_seed(0)
    weight = torch.randn(6, 3, 3, 3) * torch.tensor([1e-3, 0.01, 0.1, 1.0, 10.0, 0.0]).view(-1, 1, 1, 1)
    scales = qat.weight_scales(weight)
    assert torch.equal(scales[:5], (weight[:5].abs().flatten(1).amax(1).double() / 127).float())
    assert scales[5] == 1.0  # all-zero channel: onnxruntime's fallback scale
    quantised = qat.fake_quantize_weight(weight)
    steps = quantised / scales.view(-1, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4)  # on the integer grid times the channel's scale
    assert steps.abs().flatten(1).amax(1)[:5].round().tolist() == [127.0] * 5  # symmetric range [-127, 127]
    assert torch.equal(qat.fake_quantize_weight(-weight), -quantised)  # zero point 0
    assert (quantised - weight).abs().le(scales.view(-1, 1, 1, 1) / 2 + 1e-9).all()
    x = torch.tensor([0.0, 0.4, 0.5, 1.5, 2.5, 126.6, 127.4, 500.0, -500.0])
    assert qat.fake_quantize(x, torch.tensor(1.0)).tolist() == [0, 0, 0, 2, 2, 127, 127, 127, -128]  # half to even


def test_straight_through_gradient() -> None:
    x = torch.tensor([0.3, 1.7, 50.0, 200.0], requires_grad=True)
    scale = torch.tensor(1.0, requires_grad=True)
    qat.fake_quantize(x, scale).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 1.0, 0.0]  # saturated: no gradient
    # LSQ step-size gradient: round(v) - v inside the range, the bound when saturated.
    assert scale.grad is not None and scale.grad.item() == pytest.approx((0 - 0.3) + (2 - 1.7) + 0 + 127)
    weight = torch.randn(4, 2, 3, 3, requires_grad=True)
    qat.fake_quantize_weight(weight).sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.ones_like(weight))


def test_batch_norm_folding_preserves_outputs() -> None:
    model = _bn_model()
    x = _to_input(_images(SAMPLES, 2))
    folded = qat.fold_batch_norm(model)
    assert not folded.use_batch_norm and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        for expected, got in zip(model(x), folded(x), strict=True):
            assert torch.allclose(expected, got, atol=1e-5)


def _qat_model_file(tmp: Path) -> tuple[Path, qat.QatDetectNetV2, np.ndarray]:
    images = _images(SAMPLES, 6)
    model = qat.prepare_qat(_bn_model(), images[:4]).eval()
    path = save_atomic(qat.payload_for(model, ["person"], INPUT_HW, {}), tmp / "qat.pt")
    return path, model, images


def test_torch_qat_forward_equals_onnxruntime_qdq(tmp_path: Path) -> None:
    """The key property: the exported INT8 graph computes what QAT trained.

    Both compute the same Q/DQ arithmetic and differ only in float summation order (~1e-7 here). That
    can move a value across a rounding boundary now and then (one int8 step in one element, spread by
    the following convs; on the 960x544 PeopleNet it happens, and torch is then closer to the unoptimised
    graph than onnxruntime's optimised run is). So: the first conv agrees to float precision, the outputs
    agree 100x more closely than the float model does with the quantised one, and coverage within 0.01.
    """
    path, model, images = _qat_model_file(tmp_path)
    fp32 = export_onnx(path, tmp_path / "qat.onnx")
    int8 = export_int8(path, fp32, tmp_path / "qat_int8.onnx", [])
    x = _to_input(images[4:])  # images not used for calibration
    graph = onnx.load(str(int8.onnx))
    conv1_out = next(n.output[0] for n in graph.graph.node if n.name == "/conv1/Conv")
    graph.graph.output.append(onnx.helper.make_tensor_value_info(conv1_out, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ort_cov, ort_bbox, ort_conv1 = session.run(None, {INPUT_NAME: x.numpy()})
    with torch.no_grad():
        torch_conv1 = model._unit("conv1", x).numpy()
        cov, bbox = (t.numpy() for t in model(x))
        model.fake_quant = False
        float_cov, float_bbox = (t.numpy() for t in model(x))
    assert np.max(np.abs(torch_conv1 - ort_conv1)) < 1e-4
    for got, expected, unquantised in ((cov, ort_cov, float_cov), (bbox, ort_bbox, float_bbox)):
        quantisation_effect = np.mean(np.abs(unquantised - expected))
        assert quantisation_effect > 1e-4  # fake quantisation does change the outputs
        assert np.mean(np.abs(got - expected)) < quantisation_effect / 100
    assert np.max(np.abs(cov - ort_cov)) < 0.01


def test_export_uses_qat_scales(tmp_path: Path) -> None:
    path, model, _ = _qat_model_file(tmp_path)
    fp32 = export_onnx(path, tmp_path / "qat.onnx")
    result = export_int8(path, fp32, tmp_path / "qat_int8.onnx", [])
    assert result.method is CalibrationMethod.QAT and zero_point_violations(result.onnx) == []
    amax = load_model(path)[1].extra[qat.QAT_KEY]["activation_amax"]
    tensors = conv_input_tensors(onnx.load(str(fp32)))
    expected = {tensors[conv]: float(np.float32(value / 127.0)) for conv, value in amax.items()}
    assert result.activation_scales == expected
    assert set(amax) == {name for name, _ in model.conv_layers()} - set(HEAD_LAYERS)
    # conv1 reads the image / 255: its calibrated amax is the brightest pixel of the calibration images.
    assert amax["conv1"] == pytest.approx(float(_images(SAMPLES, 4).max()) / 255.0, abs=1e-6)


def test_float_model_export_still_calibrates(tmp_path: Path) -> None:
    path = save_atomic(qat.payload_for(_bn_model(), ["person"], INPUT_HW, {}), tmp_path / "float.pt")
    fp32 = export_onnx(path, tmp_path / "float.onnx")
    paths = sorted(SAMPLES.iterdir())[:2]
    result = export_int8(path, fp32, tmp_path / "float_int8.onnx", paths)
    assert result.method is CalibrationMethod.MINMAX and result.num_calibration_images == 2


def _qat_spec(make_spec: Any, data: Path, epochs: int) -> Any:
    spec = make_spec(data, epochs=epochs, batch_size=2)
    spec.training_config.enable_qat = True
    return spec


def test_spec_flag_trains_qat_and_resume_keeps_scales(
    overfit_data: Path, make_spec: Any, narrow_model: Path, tmp_path: Path
) -> None:
    spec = _qat_spec(make_spec, overfit_data, epochs=3)
    kwargs: dict[str, Any] = {"base_model": narrow_model, "device": "cpu", "cache_dir": tmp_path / "cache"}
    straight = train(spec, tmp_path / "straight", **kwargs)
    model, meta = load_model(straight.model_path)
    assert not meta.use_batch_norm and not model.use_batch_norm  # BN folded into the saved float weights
    entry = meta.extra[qat.QAT_KEY]
    assert all(np.isfinite(h["loss"]) for h in straight.history)
    calibrated = qat.calibrate_amax(qat.fold_batch_norm(load_model(narrow_model)[0]), _train_images(spec, tmp_path))
    assert entry["activation_amax"] != calibrated  # amax learned, not left at the calibration
    assert entry["activation_amax"].keys() == calibrated.keys()

    calls = iter([True])
    stopped = train(spec, tmp_path / "resumed", should_stop=lambda: next(calls, False), **kwargs)
    assert stopped.stopped and stopped.epochs_done == 1
    resumed = train(spec, tmp_path / "resumed", resume=True, **kwargs)
    assert resumed.epochs_run == 2
    _, resumed_meta = load_model(resumed.model_path)
    assert resumed_meta.extra[qat.QAT_KEY] == entry
    for key, value in load_model(resumed.model_path)[0].state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def _train_images(spec: Any, tmp_path: Path) -> np.ndarray:
    from gpu_worker.training.data import prepare_cache

    return np.asarray(prepare_cache(spec, tmp_path / "cache").train.images[:64])


def test_quantization_aware_finetune_and_flag_mismatch(
    overfit_data: Path, make_spec: Any, narrow_model: Path, tmp_path: Path
) -> None:
    from gpu_worker.errors import UserError

    spec = make_spec(overfit_data, epochs=50, batch_size=2)
    result = quantization_aware_finetune(
        narrow_model, spec, tmp_path / "qat", epochs=1, device="cpu", teacher=narrow_model, distill_weight=1.0
    )
    assert result.epochs_done == 1 and result.num_epochs == 1
    assert qat.QAT_KEY in load_model(result.model_path)[1].extra
    assert spec.training_config.enable_qat is False  # the caller's spec is not modified
    with pytest.raises(UserError, match="enable_qat"):
        train(spec, tmp_path / "qat", resume=True, device="cpu")


def test_real_images_qat_matches_qdq(coco_kitti: Path, tmp_path: Path) -> None:
    """On real photos (../shared), calibration from the QAT path equals onnxruntime's minmax calibration."""
    from gpu_worker.export.int8 import quantize_qdq

    images = _images(coco_kitti / "train" / "images", 4)
    model = qat.prepare_qat(_bn_model(1), images)
    path = save_atomic(qat.payload_for(model, ["person"], INPUT_HW, {}), tmp_path / "qat.pt")
    fp32 = export_onnx(path, tmp_path / "qat.onnx")
    paths = sorted((coco_kitti / "train" / "images").iterdir())[:4]
    calibrated = quantize_qdq(fp32, tmp_path / "ptq.onnx", paths).activation_scales
    from_qat = export_int8(path, fp32, tmp_path / "qat_int8.onnx", []).activation_scales
    assert calibrated.keys() == from_qat.keys()
    for tensor, scale in calibrated.items():
        assert from_qat[tensor] == pytest.approx(scale, rel=1e-5), tensor
