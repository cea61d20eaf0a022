"""Read an ONNX file's inputs, outputs and whether it holds Q/DQ nodes, without the `onnx` package.

DeepStream hosts and engine builders need only the graph signature (names and shapes), and the
`onnx` wheel is a training dependency, so this walks the protobuf wire format directly: ModelProto
field 7 is the graph; GraphProto fields 1 (node), 5 (initializer), 11 (input), 12 (output).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.engines.exceptions import ModelFormatError

Dim = int | str | None  # a fixed size, a symbolic name (dynamic batch), or unknown


@dataclass(frozen=True)
class TensorSignature:
    name: str
    dims: tuple[Dim, ...]


@dataclass(frozen=True)
class OnnxSignature:
    inputs: tuple[TensorSignature, ...]
    outputs: tuple[TensorSignature, ...]
    op_types: frozenset[str]

    @property
    def has_qdq(self) -> bool:
        """Explicit quantisation: TensorRT builds INT8 from these nodes without a calibrator."""
        return "QuantizeLinear" in self.op_types and "DequantizeLinear" in self.op_types

    @property
    def input(self) -> TensorSignature:
        if len(self.inputs) != 1:
            raise ModelFormatError(f"expected one image input, found {[t.name for t in self.inputs]}")
        return self.inputs[0]

    def input_chw(self) -> tuple[int, int, int]:
        dims = self.input.dims
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise ModelFormatError(f"input {self.input.name} has dims {list(dims)}; expected [batch, C, H, W]")
        return int(dims[1]), int(dims[2]), int(dims[3])  # type: ignore[arg-type]

    def output(self, substring: str) -> TensorSignature:
        """The one output whose name contains substring ('cov' / 'bbox': how DeepStream finds them)."""
        found = [t for t in self.outputs if substring in t.name]
        if len(found) != 1:
            raise ModelFormatError(
                f"expected exactly one output named like '*{substring}*', found {[t.name for t in self.outputs]}"
            )
        return found[0]

    def channels(self, substring: str) -> int:
        dims = self.output(substring).dims
        if len(dims) != 4 or not isinstance(dims[1], int):
            raise ModelFormatError(f"output {self.output(substring).name} has dims {list(dims)}; expected [N, C, H, W]")
        return dims[1]


def read_signature(path: Path) -> OnnxSignature:
    try:
        return _parse_model(memoryview(path.read_bytes()))
    except (ValueError, IndexError) as exc:
        raise ModelFormatError(f"{path} is not a readable ONNX model: {exc}") from exc
    except FileNotFoundError as exc:
        raise ModelFormatError(f"ONNX model {path} does not exist") from exc


def _parse_model(data: memoryview) -> OnnxSignature:
    graphs = [value for number, value in _fields(data) if number == 7]
    if not graphs or not isinstance(graphs[-1], memoryview):
        raise ValueError("no graph in the model")
    graph = graphs[-1]
    initializers: set[str] = set()
    inputs: list[TensorSignature] = []
    outputs: list[TensorSignature] = []
    op_types: set[str] = set()
    for number, value in _fields(graph):
        if not isinstance(value, memoryview):
            continue
        if number == 1:
            op_types.update(_string(v) for n, v in _fields(value) if n == 4 and isinstance(v, memoryview))
        elif number == 5:
            initializers.update(_string(v) for n, v in _fields(value) if n == 8 and isinstance(v, memoryview))
        elif number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            outputs.append(_value_info(value))
    # Old exporters list weights among the inputs; the image input is what remains.
    real_inputs = tuple(t for t in inputs if t.name not in initializers)
    return OnnxSignature(inputs=real_inputs, outputs=tuple(outputs), op_types=frozenset(op_types))


def _value_info(data: memoryview) -> TensorSignature:
    name = ""
    dims: tuple[Dim, ...] = ()
    for number, value in _fields(data):
        if number == 1 and isinstance(value, memoryview):
            name = _string(value)
        elif number == 2 and isinstance(value, memoryview):  # TypeProto
            for tensor in _submessages(value, 1):  # tensor_type
                for shape in _submessages(tensor, 2):  # shape
                    dims = tuple(_dim(d) for d in _submessages(shape, 1))
    return TensorSignature(name=name, dims=dims)


def _dim(data: memoryview) -> Dim:
    for number, value in _fields(data):
        if number == 1 and isinstance(value, int):
            return value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement
        if number == 2 and isinstance(value, memoryview):
            return _string(value)
    return None


def _submessages(data: memoryview, field_number: int) -> Iterator[memoryview]:
    for number, value in _fields(data):
        if number == field_number and isinstance(value, memoryview):
            yield value


def _string(data: memoryview) -> str:
    return bytes(data).decode("utf-8")


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) pairs: varints as int, length-delimited as a view; fixed widths skipped."""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != end:
        raise ValueError("truncated message")


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
