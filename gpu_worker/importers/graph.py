"""A small dataflow graph of convs and adds that every importer reads its source into.

Readers fold what does not change the structure into the ops: explicit PAD ops into the next conv's
padding, activations into the op they follow, batch norm into the conv it follows, Q/DQ pairs on
activations away (aliases), weight dequantisation into float weights. What remains is matched
against the DetectNet_v2 ResNet template by `structure.match_detectnet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from gpu_worker.errors import UserError


class GraphMismatchError(UserError):
    """The source graph is not a DetectNet_v2 ResNet; the message says where it differs."""


class OpActivation(StrEnum):
    NONE = "none"
    RELU = "relu"
    RELU6 = "relu6"


@dataclass
class BatchNormParams:
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


@dataclass
class ConvOp:
    node: str  # the source's node/op name, for messages
    input: str
    output: str
    weight: np.ndarray  # [O, I, kh, kw] float32
    bias: np.ndarray | None
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    bn: BatchNormParams | None = None
    activation: OpActivation = OpActivation.NONE
    sigmoid: bool = False

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class AddOp:
    node: str
    inputs: tuple[str, str]
    output: str
    activation: OpActivation = OpActivation.NONE


@dataclass
class DataflowGraph:
    source: str  # file name, for messages
    input: str
    input_hw: tuple[int, int]
    convs: list[ConvOp] = field(default_factory=list)
    adds: list[AddOp] = field(default_factory=list)

    def producer(self, tensor: str) -> ConvOp | AddOp | None:
        ops: list[ConvOp | AddOp] = [*self.convs, *self.adds]
        return next((op for op in ops if op.output == tensor), None)

    def consumers(self, tensor: str) -> list[ConvOp | AddOp]:
        found: list[ConvOp | AddOp] = [c for c in self.convs if c.input == tensor]
        found += [a for a in self.adds if tensor in a.inputs]
        return found

    def mismatch(self, where: str, message: str) -> GraphMismatchError:
        return GraphMismatchError(f"{self.source}: not a DetectNet_v2 ResNet graph at {where}: {message}")
