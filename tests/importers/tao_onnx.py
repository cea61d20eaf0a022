"""Write a DetectNetV2 as an ONNX graph shaped like TAO 5's DetectNet_v2 export (test helper).

Keras layer names, unfused BatchNormalization nodes, Relu after conv1/conv_1/adds, `input_1:0`,
`output_cov/Sigmoid:0`, `output_bbox/BiasAdd:0`; with `qdq`, int8 per-channel weights behind
DequantizeLinear and Q/DQ pairs on every activation (like NGC's quantised ONNX).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gpu_worker.detection.model import DetectNetV2, bn_name


def write_tao_onnx(model: DetectNetV2, path: Path, input_hw: tuple[int, int], qdq: bool = False) -> None:
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def activation_qdq(tensor: str) -> str:
        if not qdq:
            return tensor
        if f"{tensor}/scale" in {t.name for t in inits}:
            return f"{tensor}/dq"
        scale, zero = const(f"{tensor}/scale", np.float32(0.05)), const(f"{tensor}/zp", np.int8(0))
        nodes.append(helper.make_node("QuantizeLinear", [tensor, scale, zero], [f"{tensor}/q"], name=f"{tensor}/Q"))
        nodes.append(
            helper.make_node("DequantizeLinear", [f"{tensor}/q", scale, zero], [f"{tensor}/dq"], name=f"{tensor}/DQ")
        )
        return f"{tensor}/dq"

    def conv(name: str, x: str, stride: int, out: str | None = None) -> str:
        weight = state[f"{name}.weight"]
        pad = weight.shape[2] // 2
        if qdq:
            scale = np.abs(weight).reshape(weight.shape[0], -1).max(1) / 127 + 1e-12
            q = np.clip(np.round(weight / scale[:, None, None, None]), -127, 127).astype(np.int8)
            const(f"{name}/kernel_q", q)
            const(f"{name}/kernel_scale", scale.astype(np.float32))
            const(f"{name}/kernel_zp", np.zeros(len(scale), np.int8))
            nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{name}/kernel_q", f"{name}/kernel_scale", f"{name}/kernel_zp"],
                    [f"{name}/kernel"],
                    name=f"{name}/kernel/DQ",
                    axis=0,
                )
            )
        else:
            const(f"{name}/kernel", weight)
        const(f"{name}/bias", state[f"{name}.bias"])
        y = out or f"{name}/BiasAdd:0"
        nodes.append(
            helper.make_node(
                "Conv",
                [activation_qdq(x), f"{name}/kernel", f"{name}/bias"],
                [y],
                name=f"{name}/convolution",
                strides=[stride, stride],
                pads=[pad] * 4,
                kernel_shape=list(weight.shape[2:]),
            )
        )
        if model.use_batch_norm and not name.startswith("output_"):
            bn = bn_name(name)
            params = [
                const(f"{bn}/{p}", state[f"{bn}.{k}"])
                for p, k in (
                    ("gamma", "weight"),
                    ("beta", "bias"),
                    ("moving_mean", "running_mean"),
                    ("moving_variance", "running_var"),
                )
            ]
            nodes.append(
                helper.make_node(
                    "BatchNormalization",
                    [y, *params],
                    [f"{bn}/FusedBatchNormV3:0"],
                    name=bn,
                    epsilon=float(getattr(model, bn).eps),
                )
            )
            y = f"{bn}/FusedBatchNormV3:0"
        return y

    def relu(x: str, name: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{name}/Relu:0"], name=f"{name}/Relu"))
        return f"{name}/Relu:0"

    x = relu(conv("conv1", "input_1:0", 2), "activation_1")
    for block in model.plan.blocks:
        y = relu(conv(block.conv_1, x, block.stride), f"{block.prefix}_relu_1")
        y = conv(block.conv_2, y, 1)
        shortcut = conv(block.conv_shortcut, x, block.stride) if block.projection else x
        nodes.append(
            helper.make_node(
                "Add", [y, activation_qdq(shortcut)], [f"{block.prefix}_add/add:0"], name=f"{block.prefix}_add"
            )
        )
        x = relu(f"{block.prefix}_add/add:0", f"{block.prefix}_relu")
    cov = conv("output_cov", x, 1)
    nodes.append(helper.make_node("Sigmoid", [cov], ["output_cov/Sigmoid:0"], name="output_cov/Sigmoid"))
    conv("output_bbox", x, 1, out="output_bbox/BiasAdd:0")
    h, w = input_hw
    c = model.num_classes
    graph = helper.make_graph(
        nodes, "detectnet_v2",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("output_cov/Sigmoid:0", TensorProto.FLOAT, ["N", c, h // 16, w // 16]),
         helper.make_tensor_value_info("output_bbox/BiasAdd:0", TensorProto.FLOAT, ["N", 4 * c, h // 16, w // 16])],
        inits,
    )  # fmt: skip
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
