"""Read a TFLite DetectNet_v2 (e.g. PeopleNet converted from NGC's ONNX) into a DataflowGraph.

The flatbuffer is parsed with the schema module that ships with the TFLite runtime (`ai-edge-litert`),
so fused activations, paddings and strides are read exactly. Weights are int8 with one scale per
output channel (OHWI) in dynamic-range-quantised files: dequantised to float and transposed to OIHW.
Batch norm is already folded into the conv biases in such files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gpu_worker.errors import UserError
from gpu_worker.importers.graph import AddOp, ConvOp, DataflowGraph, GraphMismatchError, OpActivation

_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8, 7: np.int16}


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise UserError("reading .tflite files needs the TFLite runtime: pip install ai-edge-litert") from exc
    return schema_py_generated


def _enum_names(enum_class: Any) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_")}


class _Reader:
    def __init__(self, path: Path) -> None:
        schema = _schema()
        self.schema = schema
        self.raw = path.read_bytes()
        try:
            self.model = schema.ModelT.InitFromPackedBuf(self.raw, 0)
        except Exception as exc:  # a foreign file makes the flatbuffer reader fail in many ways
            raise UserError(f"{path}: not a readable TFLite model ({exc})") from exc
        if len(self.model.subgraphs) != 1:
            raise GraphMismatchError(f"{path}: {len(self.model.subgraphs)} subgraphs, expected 1")
        self.graph = self.model.subgraphs[0]
        self.op_names = _enum_names(schema.BuiltinOperator)
        self.activations = _enum_names(schema.ActivationFunctionType)
        self.path = path
        self.constants: dict[int, np.ndarray] = {}

    def name(self, index: int) -> str:
        raw = self.graph.tensors[index].name
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def op_name(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return self.op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def array(self, index: int) -> np.ndarray:
        """A constant tensor as stored (no dequantisation)."""
        if index in self.constants:
            return self.constants[index]
        tensor = self.graph.tensors[index]
        buffer = self.model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            data = bytes(np.asarray(buffer.data, dtype=np.uint8))
        elif buffer.offset and buffer.size:  # large models keep buffers after the flatbuffer
            data = self.raw[buffer.offset : buffer.offset + buffer.size]
        else:
            raise GraphMismatchError(f"{self.path}: tensor {self.name(index)!r} should be a constant but has no data")
        dtype = _NUMPY_TYPES.get(tensor.type)
        if dtype is None:
            raise GraphMismatchError(f"{self.path}: tensor {self.name(index)!r} has unsupported type {tensor.type}")
        return np.frombuffer(data, dtype=dtype).reshape([int(d) for d in tensor.shape])

    def dequantised(self, index: int) -> np.ndarray:
        values = self.array(index)
        tensor = self.graph.tensors[index]
        quant = tensor.quantization
        if values.dtype in (np.float32, np.float16):
            return values.astype(np.float32)
        if quant is None or quant.scale is None or len(quant.scale) == 0:
            raise GraphMismatchError(f"{self.path}: integer tensor {self.name(index)!r} has no quantisation scale")
        scale = np.asarray(quant.scale, dtype=np.float32)
        zero = np.asarray(quant.zeroPoint if quant.zeroPoint is not None else [0], dtype=np.float32)
        if scale.size > 1:  # per-channel along quantizedDimension
            shape = [1] * values.ndim
            shape[quant.quantizedDimension] = scale.size
            scale, zero = scale.reshape(shape), np.broadcast_to(zero, scale.shape).reshape(shape)
        return ((values.astype(np.float32) - zero) * scale).astype(np.float32)

    def shape(self, index: int) -> list[int]:
        return [int(d) for d in self.graph.tensors[index].shape]


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def read_tflite(path: str | Path) -> DataflowGraph:
    """The conv/add structure of a TFLite DetectNet_v2 with float weights (NCHW layout)."""
    path = Path(path)
    reader = _Reader(path)
    graph_def = reader.graph
    if len(graph_def.inputs) != 1:
        raise GraphMismatchError(f"{path}: {len(graph_def.inputs)} inputs, expected 1 image input")
    input_index = int(graph_def.inputs[0])
    input_shape = reader.shape(input_index)
    if len(input_shape) != 4 or input_shape[3] != 3:
        raise GraphMismatchError(f"{path}: input shape {input_shape}, expected [N, H, W, 3] (NHWC)")
    graph = DataflowGraph(source=path.name, input=reader.name(input_index), input_hw=(input_shape[1], input_shape[2]))
    alias: dict[int, int] = {}  # tensor produced by a pass-through op -> the tensor it stands for
    pads_of: dict[int, tuple[int, int, int, int]] = {}  # PAD output -> (top, left, bottom, right)
    producers: dict[int, ConvOp | AddOp] = {}

    def resolve(index: int) -> int:
        while index in alias:
            index = alias[index]
        return index

    for op_index, op in enumerate(graph_def.operators):
        kind = reader.op_name(op)
        node = f"op {op_index} {kind} (output {reader.name(int(op.outputs[0]))[:48]!r})"
        inputs, output = [int(i) for i in op.inputs], int(op.outputs[0])
        options = op.builtinOptions
        if kind == "PAD":
            paddings = reader.array(inputs[1]).reshape(4, 2)
            if paddings[0].any() or paddings[3].any():
                raise GraphMismatchError(f"{path}: {node} pads batch or channel axes: {paddings.tolist()}")
            previous = pads_of.get(inputs[0], (0, 0, 0, 0))
            pads_of[output] = (
                previous[0] + int(paddings[1][0]),
                previous[1] + int(paddings[2][0]),
                previous[2] + int(paddings[1][1]),
                previous[3] + int(paddings[2][1]),
            )
            alias[output] = inputs[0]
        elif kind == "CONV_2D":
            source = inputs[0]
            pads = pads_of.get(source, (0, 0, 0, 0))
            weight = reader.dequantised(inputs[1]).transpose(0, 3, 1, 2)  # OHWI -> OIHW
            bias = reader.dequantised(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
            stride = (int(options.strideH), int(options.strideW))
            if options.dilationHFactor != 1 or options.dilationWFactor != 1:
                raise GraphMismatchError(f"{path}: {node} is dilated; DetectNet_v2 convs are not")
            if options.padding == reader.schema.Padding.SAME:
                _, height, width, _ = reader.shape(source)
                top, bottom = _same_pads(height, weight.shape[2], stride[0])
                left, right = _same_pads(width, weight.shape[3], stride[1])
                pads = (pads[0] + top, pads[1] + left, pads[2] + bottom, pads[3] + right)
            conv = ConvOp(
                node=node,
                input=reader.name(resolve(source)),
                output=reader.name(output),
                weight=weight,
                bias=bias,
                stride=stride,
                pads=pads,
                activation=_activation(reader, options.fusedActivationFunction, node),
            )
            graph.convs.append(conv)
            producers[output] = conv
        elif kind == "ADD":
            add = AddOp(
                node=node,
                inputs=(reader.name(resolve(inputs[0])), reader.name(resolve(inputs[1]))),
                output=reader.name(output),
                activation=_activation(reader, options.fusedActivationFunction, node),
            )
            graph.adds.append(add)
            producers[output] = add
        elif kind in ("LOGISTIC", "RELU", "RELU6"):
            producer = producers.get(resolve(inputs[0]))
            if producer is None:
                raise GraphMismatchError(f"{path}: {node} does not follow a conv or an add")
            if kind == "LOGISTIC":
                if not isinstance(producer, ConvOp):
                    raise GraphMismatchError(f"{path}: {node}: sigmoid after an add")
                producer.sigmoid = True
            else:
                producer.activation = OpActivation.RELU if kind == "RELU" else OpActivation.RELU6
            alias[output] = resolve(inputs[0])
        else:
            raise GraphMismatchError(f"{path}: {node}: operator {kind} has no place in a DetectNet_v2 graph")
    return graph


def _activation(reader: _Reader, code: int, node: str) -> OpActivation:
    name = reader.activations.get(code, str(code))
    mapping = {"NONE": OpActivation.NONE, "RELU": OpActivation.RELU, "RELU6": OpActivation.RELU6}
    if name not in mapping:
        raise GraphMismatchError(f"{reader.path}: {node}: fused activation {name} is not ReLU/ReLU6")
    return mapping[name]
