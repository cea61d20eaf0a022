"""DetectNetV2: TAO layer names, shapes, padding, freezing, model-file round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import load_model, save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.errors import UserError


def test_resnet34_layout_and_names() -> None:
    model = DetectNetV2(ChannelPlan.standard(34, 3))
    convs = dict(model.conv_layers())
    assert len(convs) == 51  # conv1 + 16 blocks x 3 + 2 heads, as PeopleNet's graph
    keys = set(model.state_dict())
    for name in (
        "conv1.weight",
        "conv1.bias",
        "bn_conv1.running_var",
        "block_1a_conv_1.weight",
        "block_1a_bn_1.running_mean",
        "block_4c_conv_shortcut.bias",
        "block_4c_bn_shortcut.weight",
        "output_cov.weight",
        "output_bbox.bias",
    ):
        assert name in keys
    assert convs["conv1"].padding == (3, 3) and convs["conv1"].stride == (2, 2)
    assert convs["block_3a_conv_1"].stride == (2, 2) and convs["block_4a_conv_1"].stride == (1, 1)


def test_forward_shapes_and_ranges() -> None:
    model = DetectNetV2(ChannelPlan.standard(10, 2)).eval()
    with torch.no_grad():
        cov, bbox = model(torch.rand(2, 3, 96, 160))
    assert cov.shape == (2, 2, 6, 10) and bbox.shape == (2, 8, 6, 10)
    assert cov.dtype == torch.float32 and float(cov.min()) >= 0 and float(cov.max()) <= 1


def test_no_batch_norm_and_relu6() -> None:
    model = DetectNetV2(ChannelPlan.standard(10, 1), use_batch_norm=False, activation="relu6")
    assert not any("bn" in k for k in model.state_dict())
    with torch.no_grad():
        cov, _ = model(torch.rand(1, 3, 32, 32))
    assert cov.shape == (1, 1, 2, 2)


def test_freeze_blocks_and_bn() -> None:
    model = DetectNetV2(ChannelPlan.standard(10, 1))
    model.freeze([0, 1], freeze_bn=True)
    assert not model.conv1.weight.requires_grad and not model.block_1a_conv_2.weight.requires_grad
    assert model.block_2a_conv_1.weight.requires_grad and model.output_cov.weight.requires_grad
    model.train()
    assert not model.bn_conv1.training and not model.block_3a_bn_1.training  # freeze_bn: all BN frozen
    before = model.bn_conv1.running_mean.clone()
    model(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(model.bn_conv1.running_mean, before)


def test_model_file_round_trip(tmp_path: Path) -> None:
    model = DetectNetV2(ChannelPlan.standard(10, 3), activation="relu6").eval()
    path = save_model(tmp_path / "m.pt", model, ["person", "bag", "face"], (96, 160), extra={"note": "x"})
    loaded, meta = load_model(path)
    assert meta.classes == ("person", "bag", "face") and meta.input_hw == (96, 160)
    assert meta.activation == "relu6" and meta.extra == {"note": "x"}
    x = torch.rand(1, 3, 96, 160)
    with torch.no_grad():
        for a, b in zip(model(x), loaded.eval()(x), strict=True):
            torch.testing.assert_close(a, b)


def test_load_model_rejects_foreign_files(tmp_path: Path) -> None:
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a peoplenet-retrain model file"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
