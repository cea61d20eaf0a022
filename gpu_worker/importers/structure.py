"""Match a dataflow graph against DetectNet_v2's ResNet template, by structure, not by names.

Walk from the input: the one conv reading it is `conv1`; from each block input, the 3x3 conv whose
output feeds another 3x3 conv and then an add is `conv_1`/`conv_2`; the add's other operand is the
1x1 projection shortcut (a conv reading the same block input) or the block input itself; the add's
output is the next block input. The two 1x1 convs reading the last block output with no consumers are
the heads: the one followed by a sigmoid (or with a quarter of the other's channels) is `output_cov`.
The block count gives ResNet-10/18/34; strides, kernels and paddings must match the template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_worker.detection.channel_plan import BLOCKS_PER_STAGE, HEAD_LAYERS, ChannelPlan, block_specs
from gpu_worker.detection.model import Activation, bn_name
from gpu_worker.importers.graph import AddOp, ConvOp, DataflowGraph, OpActivation

_LAYERS_BY_BLOCKS = {sum(counts): layers for layers, counts in BLOCKS_PER_STAGE.items()}


@dataclass
class MatchedNetwork:
    plan: ChannelPlan
    layers: dict[str, ConvOp]  # TAO layer name -> conv
    activation: Activation
    use_batch_norm: bool
    input_hw: tuple[int, int]


@dataclass
class _Block:
    conv_1: ConvOp
    conv_2: ConvOp
    shortcut: ConvOp | None
    add: AddOp


def _only_consumer(graph: DataflowGraph, op: ConvOp | AddOp, where: str) -> ConvOp | AddOp:
    consumers = graph.consumers(op.output)
    if len(consumers) != 1:
        raise graph.mismatch(where, f"output of {op.node!r} feeds {len(consumers)} ops, expected exactly 1")
    return consumers[0]


def _match_block(graph: DataflowGraph, current: str, where: str) -> _Block:
    consumers = graph.consumers(current)
    for candidate in (c for c in consumers if isinstance(c, ConvOp) and c.kernel == (3, 3)):
        conv_2 = _only_consumer(graph, candidate, where)
        if not isinstance(conv_2, ConvOp):
            continue
        add = _only_consumer(graph, conv_2, where)
        if not isinstance(add, AddOp):
            raise graph.mismatch(where, f"{conv_2.node!r} should feed an add, feeds {add.node!r}")
        other = add.inputs[1] if add.inputs[0] == conv_2.output else add.inputs[0]
        if other == current:
            shortcut = None
        else:
            producer = graph.producer(other)
            if not isinstance(producer, ConvOp) or producer.input != current:
                raise graph.mismatch(
                    where, f"add {add.node!r}: second operand is neither the block input nor a conv reading it"
                )
            shortcut = producer
        expected = {candidate.node} | ({shortcut.node} if shortcut else {add.node})
        found = {c.node for c in consumers}
        if found != expected:
            raise graph.mismatch(where, f"block input feeds {sorted(found)}, expected {sorted(expected)}")
        return _Block(candidate, conv_2, shortcut, add)
    kinds = [f"{c.node} ({type(c).__name__})" for c in consumers]
    raise graph.mismatch(where, f"no residual block (3x3 conv -> 3x3 conv -> add) starts here; consumers: {kinds}")


def _heads(graph: DataflowGraph, current: str) -> tuple[ConvOp, ConvOp] | None:
    consumers = graph.consumers(current)
    if len(consumers) != 2 or not all(isinstance(c, ConvOp) for c in consumers):
        return None
    convs = [c for c in consumers if isinstance(c, ConvOp)]
    if any(graph.consumers(c.output) for c in convs) or any(c.kernel != (1, 1) for c in convs):
        return None
    sigmoid = [c for c in convs if c.sigmoid]
    cov = sigmoid[0] if len(sigmoid) == 1 else min(convs, key=lambda c: c.out_channels)
    bbox = convs[1] if cov is convs[0] else convs[0]
    if bbox.out_channels != 4 * cov.out_channels:
        raise graph.mismatch(
            "the heads", f"bbox head {bbox.node!r} has {bbox.out_channels} channels, expected 4 x {cov.out_channels}"
        )
    return cov, bbox


def _check_conv(graph: DataflowGraph, conv: ConvOp, name: str, kernel: int, stride: int) -> None:
    where = f"layer {name} (node {conv.node!r})"
    if conv.kernel != (kernel, kernel):
        raise graph.mismatch(where, f"kernel {conv.kernel}, expected {kernel}x{kernel}")
    if conv.stride != (stride, stride):
        raise graph.mismatch(where, f"stride {conv.stride}, expected {stride}")
    pad = kernel // 2
    if conv.pads != (pad, pad, pad, pad):
        raise graph.mismatch(
            where, f"padding (top, left, bottom, right) {conv.pads}, expected symmetric {pad} (PyTorch-style)"
        )


def match_detectnet(graph: DataflowGraph) -> MatchedNetwork:
    """Assign TAO layer names to the convs of `graph`, or raise GraphMismatchError saying where."""
    first = graph.consumers(graph.input)
    if len(first) != 1 or not isinstance(first[0], ConvOp):
        raise graph.mismatch("the input", f"expected one conv reading {graph.input!r}, found {len(first)} ops")
    conv1 = first[0]
    current = conv1.output
    blocks: list[_Block] = []
    heads = _heads(graph, current)
    while heads is None:
        block = _match_block(graph, current, f"block {len(blocks) + 1} (input {current!r})")
        blocks.append(block)
        current = block.add.output
        heads = _heads(graph, current)
        if len(blocks) > max(_LAYERS_BY_BLOCKS):
            raise graph.mismatch(current, "more residual blocks than ResNet-34 has")
    if len(blocks) not in _LAYERS_BY_BLOCKS:
        raise graph.mismatch("the backbone", f"{len(blocks)} residual blocks; ResNet-10/18/34 have 4/8/16")
    num_layers = _LAYERS_BY_BLOCKS[len(blocks)]
    all_projections = all(b.shortcut is not None for b in blocks)
    specs = block_specs(num_layers, all_projections)
    layers: dict[str, ConvOp] = {"conv1": conv1}
    _check_conv(graph, conv1, "conv1", 7, 2)
    for spec, block in zip(specs, blocks, strict=True):
        if spec.projection != (block.shortcut is not None):
            raise graph.mismatch(spec.prefix, "projection shortcut where the template has none, or the reverse")
        _check_conv(graph, block.conv_1, spec.conv_1, 3, spec.stride)
        _check_conv(graph, block.conv_2, spec.conv_2, 3, 1)
        layers[spec.conv_1] = block.conv_1
        layers[spec.conv_2] = block.conv_2
        if block.shortcut is not None:
            _check_conv(graph, block.shortcut, spec.conv_shortcut, 1, spec.stride)
            layers[spec.conv_shortcut] = block.shortcut
    cov, bbox = heads
    for name, head in (("output_cov", cov), ("output_bbox", bbox)):
        _check_conv(graph, head, name, 1, 1)
        layers[name] = head
    plan = ChannelPlan(
        num_layers=num_layers,
        all_projections=all_projections,
        num_classes=cov.out_channels,
        widths={name: conv.out_channels for name, conv in layers.items()},
    )
    try:
        plan.validate()
    except ValueError as exc:
        raise graph.mismatch("the channel plan", str(exc)) from exc
    for name, conv in layers.items():
        if conv.in_channels != plan.in_channels(name):
            raise graph.mismatch(name, f"{conv.in_channels} input channels, expected {plan.in_channels(name)}")
    activation = _activation(graph, conv1, blocks)
    use_batch_norm = _batch_norm(graph, layers)
    return MatchedNetwork(plan, layers, activation, use_batch_norm, graph.input_hw)


def _activation(graph: DataflowGraph, conv1: ConvOp, blocks: list[_Block]) -> Activation:
    activated: list[ConvOp | AddOp] = [conv1]
    plain: list[ConvOp | AddOp] = []
    for block in blocks:
        activated += [block.conv_1, block.add]
        plain += [block.conv_2] + ([block.shortcut] if block.shortcut else [])
    kinds = {op.activation for op in activated}
    if len(kinds) != 1 or OpActivation.NONE in kinds:
        detail = {op.node: str(op.activation) for op in activated if op.activation != activated[0].activation}
        raise graph.mismatch("activations", f"expected one ReLU or ReLU6 everywhere; differing: {detail}")
    for op in plain:
        if op.activation != OpActivation.NONE:
            raise graph.mismatch(op.node, "activation before the residual add; the template has none there")
    return Activation.RELU if kinds == {OpActivation.RELU} else Activation.RELU6


def _batch_norm(graph: DataflowGraph, layers: dict[str, ConvOp]) -> bool:
    backbone = {name: conv for name, conv in layers.items() if not name.startswith("output_")}
    with_bn = {name for name, conv in backbone.items() if conv.bn is not None}
    if with_bn and with_bn != set(backbone):
        raise graph.mismatch("batch norm", f"only some convs have one: missing on {sorted(set(backbone) - with_bn)}")
    for head in HEAD_LAYERS:
        if layers[head].bn is not None:
            raise graph.mismatch(head, "batch norm after an output head")
    return bool(with_bn)


def to_state_dict(matched: MatchedNetwork, bn_epsilon: float) -> dict[str, np.ndarray]:
    """TAO-named float32 arrays for `DetectNetV2` (whose batch norm uses `bn_epsilon`).

    A source epsilon that differs is absorbed exactly into the running variance
    (var + eps_src - eps_model), so outputs do not shift by the epsilon difference.
    """
    state: dict[str, np.ndarray] = {}
    for name, conv in matched.layers.items():
        state[f"{name}.weight"] = np.ascontiguousarray(conv.weight, dtype=np.float32)
        bias = conv.bias if conv.bias is not None else np.zeros(conv.out_channels, np.float32)
        state[f"{name}.bias"] = np.asarray(bias, dtype=np.float32)
        if matched.use_batch_norm and conv.bn is not None:
            bn = bn_name(name)
            state[f"{bn}.weight"] = conv.bn.gamma.astype(np.float32)
            state[f"{bn}.bias"] = conv.bn.beta.astype(np.float32)
            state[f"{bn}.running_mean"] = conv.bn.mean.astype(np.float32)
            state[f"{bn}.running_var"] = np.maximum(conv.bn.var + conv.bn.eps - bn_epsilon, 0.0).astype(np.float32)
    return state
