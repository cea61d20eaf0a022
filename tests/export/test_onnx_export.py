"""ONNX export: TAO tensor names, dynamic batch, parity with PyTorch, labels.txt, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gpu_worker.detection.channel_plan import ChannelPlan
from gpu_worker.detection.checkpoint import save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.export.labels import read_labels, write_labels
from gpu_worker.export.onnx_export import BBOX_OUTPUT, COV_OUTPUT, INPUT_NAME, export_onnx
from gpu_worker.export.onnx_runner import OnnxPredictor
from gpu_worker.training.predictors import TorchPredictor, open_predictor

CLASSES = ("person", "bag", "face")
INPUT_HW = (64, 96)


def tiny_model(activation: str = "relu") -> DetectNetV2:
    """ResNet-10 with random weights and non-trivial batch-norm statistics (so folding is exercised)."""
    torch.manual_seed(0)
    model = DetectNetV2(ChannelPlan.standard(10, len(CLASSES)), activation=activation)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("export")
    model_path = save_model(folder / "model.pt", tiny_model(), CLASSES, INPUT_HW)
    return model_path, export_onnx(model_path, folder / "onnx" / "model.onnx")


def test_io_names_dynamic_batch_and_checker(exported: tuple[Path, Path]) -> None:
    import onnx

    _, onnx_path = exported
    graph = onnx.load(str(onnx_path))
    onnx.checker.check_model(graph, full_check=True)
    assert [i.name for i in graph.graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.graph.output] == [COV_OUTPUT, BBOX_OUTPUT]
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    assert [d.dim_value for d in dims[1:]] == [3, *INPUT_HW]
    out_dims = [[d.dim_value for d in o.type.tensor_type.shape.dim[1:]] for o in graph.graph.output]
    assert out_dims == [[3, 4, 6], [12, 4, 6]]
    ops = {n.op_type for n in graph.graph.node}
    assert ops <= {"Conv", "Relu", "Add", "Sigmoid"}  # batch norm folded, no leftover casts
    producers = {o: n.op_type for n in graph.graph.node for o in n.output}
    assert producers[COV_OUTPUT] == "Sigmoid"
    assert producers[BBOX_OUTPUT] == "Conv"


def test_onnxruntime_matches_pytorch_for_several_batch_sizes(exported: tuple[Path, Path]) -> None:
    model_path, onnx_path = exported
    torch_predictor = TorchPredictor.from_file(model_path)
    onnx_predictor = OnnxPredictor(onnx_path)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        images = rng.integers(0, 256, size=(batch, *INPUT_HW, 3), dtype=np.uint8)
        expected, got = torch_predictor.predict(images), onnx_predictor.predict(images)
        for e, g in zip(expected, got, strict=True):
            assert g.shape == e.shape
            assert np.max(np.abs(e - g)) <= 1e-4


def test_relu6_model_exports_with_parity(tmp_path: Path) -> None:
    model_path = save_model(tmp_path / "m.pt", tiny_model("relu6"), CLASSES, INPUT_HW)
    onnx_path = export_onnx(model_path, tmp_path / "m.onnx")  # verify=True raises above 1e-4
    image = np.random.default_rng(1).integers(0, 256, size=(1, *INPUT_HW, 3), dtype=np.uint8)
    cov_t, _ = TorchPredictor.from_file(model_path).predict(image)
    cov_o, _ = OnnxPredictor(onnx_path).predict(image)
    assert np.max(np.abs(cov_t - cov_o)) <= 1e-4


def test_labels_file_in_channel_order(exported: tuple[Path, Path]) -> None:
    _, onnx_path = exported
    labels = onnx_path.with_name("labels.txt")
    assert labels.read_text() == "person\nbag\nface\n"
    assert OnnxPredictor(onnx_path).classes == CLASSES  # from the graph's metadata


def test_onnx_without_metadata_takes_labels_file(exported: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    _, onnx_path = exported
    graph = onnx.load(str(onnx_path))
    del graph.metadata_props[:]
    bare = tmp_path / "ngc.onnx"
    onnx.save(graph, str(bare))
    assert OnnxPredictor(bare, fallback_classes=("a", "b", "c")).classes == ("a", "b", "c")
    write_labels(tmp_path / "labels.txt", ["Person", "Bag", "Face"])  # NGC's spelling
    assert open_predictor(bare).classes == ("Person", "Bag", "Face")
    assert read_labels(tmp_path / "labels.txt") == ("Person", "Bag", "Face")


def test_write_labels_rejects_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_labels(tmp_path / "labels.txt", ["person", "Person"])
    with pytest.raises(ValueError):
        write_labels(tmp_path / "labels.txt", ["per\nson"])


def test_export_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpu_worker.cli import app

    model_path = save_model(tmp_path / "model.pt", tiny_model(), CLASSES, INPUT_HW)
    result = CliRunner().invoke(app, ["export", "-m", str(model_path), "-o", str(tmp_path / "out" / "model.onnx")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert (tmp_path / "out" / "labels.txt").read_text().split() == list(CLASSES)
    bad = CliRunner().invoke(app, ["export", "-m", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")])
    assert bad.exit_code != 0
