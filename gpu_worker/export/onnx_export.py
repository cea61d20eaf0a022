"""Export our DetectNet_v2 model file to ONNX with TAO 5's tensor names, plus `labels.txt`.

The graph takes `input_1:0` [N, 3, H, W] (RGB / 255, dynamic N) and gives `output_cov/Sigmoid:0`
[N, C, H/16, W/16] and `output_bbox/BiasAdd:0` [N, 4C, H/16, W/16], the names TAO 5 writes and
DeepStream's DetectNet parser finds (by the substrings `cov` and `bbox`). Batch norm is folded into
the convolutions by the exporter. Opset 13 by default: the graph is only Conv/Relu/Add/Sigmoid (+Clip
for ReLU6), which every TensorRT since 7 parses, and 13 is the newest opset TensorRT 8.0-8.2 (JetPack
4.6, DeepStream 6.0) lists as supported; per-channel Q/DQ (INT8) also needs >= 13.

The file is checked with `onnx.checker` and compared with PyTorch through onnxruntime before it is
moved into place (written to a temporary name first, so readers never see half a file).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gpu_worker.export.labels import labels_path_for, write_labels

if TYPE_CHECKING:
    import onnx

    from gpu_worker.detection.model import DetectNetV2

INPUT_NAME = "input_1:0"
COV_OUTPUT = "output_cov/Sigmoid:0"
BBOX_OUTPUT = "output_bbox/BiasAdd:0"
DEFAULT_OPSET = 13
PARITY_TOLERANCE = 1e-4
METADATA_CLASSES = "classes"
METADATA_INPUT_HW = "input_hw"


class ExportError(RuntimeError):
    """The exported graph failed its checks (onnx.checker or parity with PyTorch)."""


def export_onnx(
    model_path: str | Path, out_path: str | Path, opset: int = DEFAULT_OPSET, *, verify: bool = True
) -> Path:
    """Export a model file (`save_model` format) to `out_path`; writes `labels.txt` beside it."""
    from gpu_worker.detection.checkpoint import load_model

    model, meta = load_model(model_path)
    return export_model(model, out_path, meta.classes, meta.input_hw, opset, verify=verify)


def export_model(
    model: DetectNetV2,
    out_path: str | Path,
    classes: Sequence[str],
    input_hw: tuple[int, int],
    opset: int = DEFAULT_OPSET,
    *,
    verify: bool = True,
) -> Path:
    """Export a DetectNetV2 in memory; see the module docstring for the graph contract."""
    import onnx
    import torch

    out = Path(out_path)
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.num_classes} classes")
    height, width = input_hw
    if height % 16 or width % 16:
        raise ValueError(f"input size {width}x{height} must be a multiple of 16")
    model = model.to("cpu").float().eval()
    sample = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model,
                (sample,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[COV_OUTPUT, BBOX_OUTPUT],
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, COV_OUTPUT, BBOX_OUTPUT)},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        graph = onnx.load(str(tmp))
        _drop_noop_casts(graph)
        _check_names(graph)
        graph.producer_name = "peoplenet-retrain"
        _set_metadata(graph, {METADATA_CLASSES: json.dumps(list(classes)), METADATA_INPUT_HW: f"{height}x{width}"})
        try:
            onnx.checker.check_model(graph, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported graph fails onnx.checker: {exc}") from exc
        onnx.save(graph, str(tmp))
        if verify:
            verify_parity(model, tmp, input_hw)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    write_labels(labels_path_for(out), classes)
    return out


def verify_parity(model: DetectNetV2, onnx_path: Path, input_hw: tuple[int, int], batch: int = 2) -> float:
    """Max abs difference between PyTorch and onnxruntime (fp32) on random input; ExportError above 1e-4."""
    import onnxruntime as ort
    import torch

    x = torch.rand(batch, 3, *input_hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = [t.numpy() for t in model.to("cpu").float().eval()(x)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([COV_OUTPUT, BBOX_OUTPUT], {INPUT_NAME: x.numpy()})
    diff = max(float(np.max(np.abs(e - g))) for e, g in zip(expected, got, strict=True))
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime and PyTorch outputs differ by {diff:.3g} (> {PARITY_TOLERANCE})")
    return diff


def _check_names(model: onnx.ModelProto) -> None:
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or outputs != [COV_OUTPUT, BBOX_OUTPUT]:
        raise ExportError(f"exported graph has inputs {inputs} and outputs {outputs}, not the TAO names")


def _set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _drop_noop_casts(model: onnx.ModelProto) -> None:
    """Remove Cast-to-float of float tensors (the model's `.float()` on its heads) so heads end in Conv/Sigmoid."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type != "Cast" or len(node.input) != 1:
            continue
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        source, target = node.input[0], node.output[0]
        if to is None or types.get(source) != to or source in graph_outputs:
            continue
        if target in graph_outputs:
            if any(i.name == source for i in graph.input):
                continue
            _rename(graph, source, target)  # the producer now writes the output tensor directly
        else:
            _rename(graph, target, source)
        graph.node.remove(node)


def _rename(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for field in (node.input, node.output):
            for index, name in enumerate(field):
                if name == old:
                    field[index] = new
