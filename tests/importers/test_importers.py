"""Importers: the real PeopleNet TFLite (structure, parity with the TFLite runtime), TAO-shaped ONNX
(plain and QDQ, weights equal after the round trip), our own files, and refusals that say where."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import load_model, save_model
from gpu_worker.detection.model import Activation, DetectNetV2
from gpu_worker.errors import UserError
from gpu_worker.importers import GraphMismatchError, import_weights
from tests.importers.tao_onnx import write_tao_onnx


def _tiny(use_batch_norm: bool = True, activation: Activation = Activation.RELU) -> DetectNetV2:
    plan = ChannelPlan.standard(10, 2)
    widths = {name: max(8, w // 8) for name, w in plan.widths.items()}
    widths.update(output_cov=2, output_bbox=8)
    plan = ChannelPlan(10, True, 2, widths)
    torch.manual_seed(0)
    model = DetectNetV2(plan, use_batch_norm=use_batch_norm, activation=activation)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def imported_peoplenet(peoplenet_tflite: Path):  # type: ignore[no-untyped-def]
    return import_weights(peoplenet_tflite)


@pytest.mark.shared
def test_tflite_peoplenet_structure(imported_peoplenet) -> None:  # type: ignore[no-untyped-def]
    model = imported_peoplenet.model
    widths = model.plan.widths
    assert (model.plan.num_layers, model.plan.all_projections) == (34, True)
    assert widths["conv1"] == 28 and widths["block_4c_conv_2"] == 120
    assert (widths["output_cov"], widths["output_bbox"]) == (3, 12)
    assert model.activation is Activation.RELU6 and not model.use_batch_norm
    assert imported_peoplenet.classes == ("person", "bag", "face")
    assert imported_peoplenet.input_hw == (544, 960)


@pytest.mark.shared
@pytest.mark.slow
def test_tflite_parity_on_real_images(imported_peoplenet, peoplenet_tflite: Path, coco_kitti: Path) -> None:  # type: ignore[no-untyped-def]
    from gpu_worker.importers.parity import compare_with_tflite

    images = sorted((coco_kitti / "val" / "images").glob("*.jpg"))[:4]
    report = compare_with_tflite(peoplenet_tflite, imported_peoplenet.model, images)
    assert report.within_tolerance(), report
    assert report.coverage_mean_abs < 1e-3
    assert report.detections_reference > 0


@pytest.mark.parametrize("qdq", [False, True])
def test_tao_shaped_onnx_round_trip(tmp_path: Path, qdq: bool) -> None:
    model = _tiny(use_batch_norm=True)
    path = tmp_path / "tao.onnx"
    write_tao_onnx(model, path, (64, 96), qdq=qdq)
    imported = import_weights(path, ["person", "bag"])
    assert imported.model.plan.widths == model.plan.widths
    assert imported.model.use_batch_norm and imported.input_hw == (64, 96)
    source, got = model.state_dict(), imported.model.state_dict()
    for key, value in source.items():
        if key.endswith("num_batches_tracked"):
            continue
        if qdq and key.endswith(".weight") and got[key].dim() == 4:  # int8 weights: within half a step
            step = value.abs().flatten(1).amax(1) / 127
            assert torch.all((got[key] - value).abs().flatten(1).amax(1) <= step / 2 + 1e-7), key
        else:
            torch.testing.assert_close(got[key], value, msg=key)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected, actual = model(x), imported.model(x)
    torch.testing.assert_close(actual[0], expected[0], atol=0.02 if qdq else 1e-5, rtol=0)


def test_our_exported_onnx_imports_back(tmp_path: Path) -> None:
    from gpu_worker.export.onnx_export import export_onnx

    model = _tiny(use_batch_norm=True, activation=Activation.RELU6)
    pt = save_model(tmp_path / "m.pt", model, ["person", "bag"], (64, 96))
    onnx_path = export_onnx(pt, tmp_path / "m.onnx")
    imported = import_weights(onnx_path, ["person", "bag"])
    assert imported.model.activation is Activation.RELU6 and not imported.model.use_batch_norm  # exporter folds BN
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model(x), imported.model(x), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_native_pass_through_and_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpu_worker.cli import app

    model = _tiny(use_batch_norm=False)
    src = save_model(tmp_path / "m.pt", model, ["person", "bag"], (64, 96))
    result = CliRunner().invoke(app, ["import-weights", str(src), "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 0, result.output
    loaded, meta = load_model(tmp_path / "out.pt")
    assert meta.classes == ("person", "bag") and meta.extra["imported_from"] == "native"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_mismatching_graph_is_refused_with_location(tmp_path: Path) -> None:
    model = _tiny(use_batch_norm=False)
    path = tmp_path / "bad.onnx"
    write_tao_onnx(model, path, (64, 96))
    graph = onnx.load(str(path))
    # Cut the residual add of block 2a: its second operand now comes from nowhere the template allows.
    add = next(n for n in graph.graph.node if n.name == "block_2a_add")
    add.input[1] = add.input[0]
    onnx.save(graph, str(path))
    with pytest.raises(GraphMismatchError, match=r"block 2 .*add"):
        import_weights(path, ["person", "bag"])


def test_unknown_operator_and_wrong_class_count_are_user_errors(tmp_path: Path) -> None:
    model = _tiny(use_batch_norm=False)
    path = tmp_path / "m.onnx"
    write_tao_onnx(model, path, (64, 96))
    with pytest.raises(UserError, match="--classes names 3 classes"):
        import_weights(path, ["a", "b", "c"])
    graph = onnx.load(str(path))
    relu = next(n for n in graph.graph.node if n.op_type == "Relu")
    relu.op_type = "LeakyRelu"
    onnx.save(graph, str(path))
    with pytest.raises(GraphMismatchError, match="LeakyRelu"):
        import_weights(path, ["a", "b"])
