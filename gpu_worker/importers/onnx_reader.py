"""Read an ONNX DetectNet_v2 (TAO 5 export, NGC's decrypted PeopleNet, our own export) into a DataflowGraph.

Handled: Conv (weights as initializers, or int8 initializers behind DequantizeLinear in QDQ files),
BatchNormalization after a conv, Relu / Clip(0, 6) activations, Add (residual, or a bias add of a
constant after a conv), Sigmoid on the coverage head, Pad before a conv, Identity, and
QuantizeLinear -> DequantizeLinear pairs on activations (treated as identity: the float weights and
graph are what we import; the model is re-quantised at export). Anything else is refused, naming
the node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gpu_worker.errors import UserError
from gpu_worker.importers.graph import (
    AddOp,
    BatchNormParams,
    ConvOp,
    DataflowGraph,
    GraphMismatchError,
    OpActivation,
)


class _Onnx:
    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        try:
            self.model = onnx.load(str(path))
        except Exception as exc:  # protobuf raises DecodeError and others for a foreign file
            raise UserError(f"{path}: not a readable ONNX model ({exc})") from exc
        self.path = path
        self.graph = self.model.graph
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attr.t)

    def fail(self, node: Any, message: str) -> GraphMismatchError:
        return GraphMismatchError(f"{self.path.name}: node {node.name or node.output[0]!r} ({node.op_type}): {message}")

    def constant(self, name: str, node: Any) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        raise self.fail(node, f"input {name!r} should be a constant (initializer)")


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _dequantize(reader: _Onnx, node: Any) -> np.ndarray:
    values = reader.constant(node.input[0], node).astype(np.float32)
    scale = reader.constant(node.input[1], node).astype(np.float32)
    zero = reader.constant(node.input[2], node).astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
    axis = int(_attrs(node).get("axis", 1))
    if np.ndim(scale) == 1 and scale.size > 1:
        shape = [1] * values.ndim
        shape[axis] = scale.size
        zero = np.broadcast_to(np.asarray(zero, np.float32), scale.shape).reshape(shape)
        scale = scale.reshape(shape)
    return ((values - zero) * scale).astype(np.float32)


def _graph_input(reader: _Onnx) -> tuple[str, tuple[int, int]]:
    inputs = [i for i in reader.graph.input if i.name not in reader.constants]
    if len(inputs) != 1:
        raise GraphMismatchError(f"{reader.path.name}: {len(inputs)} graph inputs, expected 1 image input")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or not dims[2] or not dims[3]:
        raise GraphMismatchError(
            f"{reader.path.name}: input {inputs[0].name!r} has shape {dims}, expected [N, 3, H, W]"
        )
    return inputs[0].name, (int(dims[2]), int(dims[3]))


def read_onnx(path: str | Path) -> DataflowGraph:
    path = Path(path)
    reader = _Onnx(path)
    input_name, input_hw = _graph_input(reader)
    graph = DataflowGraph(source=path.name, input=input_name, input_hw=input_hw)
    alias: dict[str, str] = {}
    pads_of: dict[str, tuple[int, int, int, int]] = {}
    producers: dict[str, ConvOp | AddOp] = {}
    readers_of: dict[str, int] = {}
    for node in reader.graph.node:
        for name in node.input:
            readers_of[name] = readers_of.get(name, 0) + 1

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def pads_before(name: str) -> tuple[int, int, int, int]:
        # Pad outputs carry the padding summed over any Pad chain; Q/DQ/Identity may sit in between.
        while name not in pads_of and name in alias:
            name = alias[name]
        return pads_of.get(name, (0, 0, 0, 0))

    def follows(node: Any) -> ConvOp | AddOp:
        producer = producers.get(resolve(node.input[0]))
        if producer is None:
            raise reader.fail(node, "does not follow a conv or an add")
        if readers_of.get(node.input[0], 0) != 1:
            raise reader.fail(node, "its input is also read elsewhere; the template applies it in place")
        return producer

    for node in reader.graph.node:
        op, out = node.op_type, node.output[0] if node.output else ""
        if op == "Constant" or (op == "DequantizeLinear" and node.input[0] in reader.constants):
            if op == "DequantizeLinear":
                reader.constants[out] = _dequantize(reader, node)
        elif op in ("Identity", "QuantizeLinear", "DequantizeLinear"):
            alias[out] = node.input[0]
        elif op == "Pad":
            attrs = _attrs(node)
            if attrs.get("mode", b"constant") not in (b"constant", "constant"):
                raise reader.fail(node, "only zero padding is supported")
            pads = attrs["pads"] if "pads" in attrs else reader.constant(node.input[1], node).tolist()
            if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
                raise reader.fail(node, f"pads {pads} touch batch or channel axes")
            prev = pads_before(node.input[0])
            pads_of[out] = (prev[0] + pads[2], prev[1] + pads[3], prev[2] + pads[6], prev[3] + pads[7])
            alias[out] = node.input[0]
        elif op == "Conv":
            attrs = _attrs(node)
            if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise reader.fail(node, "grouped or dilated conv")
            auto_pad = attrs.get("auto_pad", b"NOTSET")
            if auto_pad not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                raise reader.fail(node, f"auto_pad {auto_pad!r}: export with explicit pads")
            own = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
            extra = pads_before(node.input[0])
            pads = (own[0] + extra[0], own[1] + extra[1], own[2] + extra[2], own[3] + extra[3])
            stride = tuple(int(s) for s in attrs.get("strides", [1, 1]))
            bias = reader.constant(node.input[2], node).astype(np.float32) if len(node.input) > 2 else None
            conv = ConvOp(
                node=node.name or out,
                input=resolve(node.input[0]),
                output=out,
                weight=reader.constant(node.input[1], node).astype(np.float32),
                bias=bias,
                stride=(stride[0], stride[1]),
                pads=pads,
            )
            graph.convs.append(conv)
            producers[out] = conv
        elif op == "BatchNormalization":
            followed = follows(node)
            if not isinstance(followed, ConvOp) or followed.bn is not None or followed.activation != OpActivation.NONE:
                raise reader.fail(node, "batch norm must directly follow a conv")
            conv = followed
            gamma, beta, mean, var = (reader.constant(n, node).astype(np.float32) for n in node.input[1:5])
            conv.bn = BatchNormParams(gamma, beta, mean, var, float(_attrs(node).get("epsilon", 1e-5)))
            alias[out] = resolve(node.input[0])
        elif op in ("Relu", "Clip"):
            producer = follows(node)
            producer.activation = _clip_kind(reader, node) if op == "Clip" else OpActivation.RELU
            alias[out] = resolve(node.input[0])
        elif op == "Sigmoid":
            producer = follows(node)
            if not isinstance(producer, ConvOp):
                raise reader.fail(node, "sigmoid after an add")
            producer.sigmoid = True
            alias[out] = resolve(node.input[0])
        elif op == "Add" and any(n in reader.constants for n in node.input):
            # A separate bias add (Keras BiasAdd exported unfused): fold into the conv before it.
            tensor = node.input[1] if node.input[0] in reader.constants else node.input[0]
            constant = node.input[0] if tensor == node.input[1] else node.input[1]
            biased = producers.get(resolve(tensor))
            if not isinstance(biased, ConvOp) or biased.bn is not None or biased.activation != OpActivation.NONE:
                raise reader.fail(node, "constant add that is not a conv bias")
            conv = biased
            value = reader.constants[constant].astype(np.float32).reshape(-1)
            conv.bias = value if conv.bias is None else conv.bias + value
            alias[out] = resolve(tensor)
        elif op == "Add":
            add = AddOp(node=node.name or out, inputs=(resolve(node.input[0]), resolve(node.input[1])), output=out)
            graph.adds.append(add)
            producers[out] = add
        else:
            raise reader.fail(node, "operator has no place in a DetectNet_v2 graph")
    return graph


def _clip_kind(reader: _Onnx, node: Any) -> OpActivation:
    attrs = _attrs(node)
    low = attrs.get("min", reader.constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None)
    high = attrs.get("max", reader.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None)
    if low is not None and float(np.asarray(low)) == 0.0 and high is not None and float(np.asarray(high)) == 6.0:
        return OpActivation.RELU6
    raise reader.fail(node, f"Clip({low}, {high}) is neither ReLU nor ReLU6")
