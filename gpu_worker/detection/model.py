"""DetectNet_v2 in PyTorch: a TAO-layout ResNet-10/18/34 at output stride 16 with two 1x1 heads.

Parameters and buffers are flat and carry TAO's Keras layer names (`conv1.weight`, `bn_conv1.running_mean`,
`block_2a_conv_shortcut.bias`, `output_cov.weight`, ...), so weight importers and the pruner address
layers by the names in TAO's `.hdf5`/ONNX and in `ChannelPlan`.

Padding: every conv pads symmetrically by k // 2 (3 for the 7x7 conv1, 1 for 3x3, 0 for 1x1). The
real PeopleNet TFLite graph has exactly four explicit PAD ops, before conv1 ((3, 3) each side) and
before the three strided 3x3 convs ((1, 1) each side), which is this padding, not TF's asymmetric
"same" padding for stride 2.

Activation: TAO's template uses ReLU; TAO's QAT models (the pruned/quantised PeopleNet among them)
use ReLU6, so `activation` is "relu" or "relu6" and travels in the model file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum

import torch
from torch import Tensor, nn

from gpu_worker.detection.channel_plan import HEAD_LAYERS, BlockSpec, ChannelPlan

# Keras BatchNormalization's epsilon, for parity with TAO weights. The running-statistics momentum is
# PyTorch's 0.1, not Keras' 0.01 (1 - 0.99): retraining runs are short, and with 0.01 the statistics
# lag the weights for hundreds of steps, which wrecks eval-mode accuracy of short runs.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.1


class Activation(StrEnum):
    RELU = "relu"
    RELU6 = "relu6"


def bn_name(conv_name: str) -> str:
    """TAO's batch-norm layer name for a conv: conv1 -> bn_conv1, block_1a_conv_2 -> block_1a_bn_2."""
    if conv_name == "conv1":
        return "bn_conv1"
    return conv_name.replace("_conv_", "_bn_")


class DetectNetV2(nn.Module):
    """DetectNet_v2 detector.

    forward(x): x is [N, 3, H, W] RGB in [0, 1] (pixel / 255, no mean), H and W multiples of 16.
    Returns (cov, bbox): cov [N, C, H/16, W/16] after sigmoid, bbox [N, 4C, H/16, W/16] linear, where
    channels 4c..4c+3 are class c's (left, top, right, bottom) distances / bbox scale (see box_coder).
    Both outputs are float32, also under autocast.
    """

    def __init__(
        self,
        plan: ChannelPlan,
        use_batch_norm: bool = True,
        activation: Activation | str = Activation.RELU,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        plan.validate()
        self.plan = plan
        self.use_batch_norm = use_batch_norm
        self.activation = Activation(activation)
        self._frozen_bn: set[str] = set()
        # When a dict, every conv unit stores its output (after batch norm) here by layer name (training/hints.py).
        self.taps: dict[str, Tensor] | None = None
        self._add_conv("conv1", 7, 2, bn_momentum)
        for block in plan.blocks:
            self._add_conv(block.conv_1, 3, block.stride, bn_momentum)
            self._add_conv(block.conv_2, 3, 1, bn_momentum)
            if block.projection:
                self._add_conv(block.conv_shortcut, 1, block.stride, bn_momentum)
        for head in HEAD_LAYERS:
            setattr(self, head, nn.Conv2d(plan.in_channels(head), plan.widths[head], 1, bias=True))

    def _add_conv(self, name: str, kernel: int, stride: int, bn_momentum: float) -> None:
        conv = nn.Conv2d(
            self.plan.in_channels(name), self.plan.widths[name], kernel, stride=stride, padding=kernel // 2, bias=True
        )
        setattr(self, name, conv)
        if self.use_batch_norm:
            setattr(self, bn_name(name), nn.BatchNorm2d(self.plan.widths[name], eps=BN_EPSILON, momentum=bn_momentum))

    @property
    def num_classes(self) -> int:
        return self.plan.num_classes

    def conv_layers(self) -> Iterator[tuple[str, nn.Conv2d]]:
        """Every conv by TAO name, heads included, in graph order."""
        for name, module in self.named_children():
            if isinstance(module, nn.Conv2d):
                yield name, module

    def _unit(self, name: str, x: Tensor) -> Tensor:
        """conv (+ batch norm) without activation."""
        x = self._conv_bn(name, x)
        if self.taps is not None:
            self.taps[name] = x
        return x

    def _conv_bn(self, name: str, x: Tensor) -> Tensor:
        x = getattr(self, name)(x)
        if self.use_batch_norm:
            x = getattr(self, bn_name(name))(x)
        return x

    def _act(self, x: Tensor) -> Tensor:
        return torch.relu(x) if self.activation is Activation.RELU else nn.functional.relu6(x)

    def _block(self, block: BlockSpec, x: Tensor) -> Tensor:
        y = self._act(self._unit(block.conv_1, x))
        y = self._unit(block.conv_2, y)
        shortcut = self._unit(block.conv_shortcut, x) if block.projection else x
        return self._act(y + shortcut)

    def features(self, x: Tensor) -> Tensor:
        x = self._act(self._unit("conv1", x))
        for block in self.plan.blocks:
            x = self._block(block, x)
        return x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        # Heads in float32: the BCE on sigmoid outputs near 0/1 needs more than bf16's 8 mantissa bits.
        cov = torch.sigmoid(self.get_submodule("output_cov")(features).float())  # [N, C, h, w]
        bbox = self.get_submodule("output_bbox")(features).float()  # [N, 4C, h, w]
        return cov, bbox

    # ---- freezing (TAO model_config.freeze_blocks / freeze_bn) ----
    def freeze(self, freeze_blocks: Sequence[int] = (), freeze_bn: bool = False) -> None:
        """Stop training some layers: block 0 is conv1, blocks 1-4 are the ResNet stages.

        Frozen layers keep their weights and, for batch norm, their running statistics (eval mode).
        """
        wanted = {int(b) for b in freeze_blocks}
        bad = wanted - {0, 1, 2, 3, 4}
        if bad:
            raise ValueError(f"freeze_blocks must be within 0..4, got {sorted(bad)}")
        frozen_convs: list[str] = ["conv1"] if 0 in wanted else []
        for block in self.plan.blocks:
            if block.stage in wanted:
                frozen_convs += [block.conv_1, block.conv_2] + ([block.conv_shortcut] if block.projection else [])
        for name in frozen_convs:
            getattr(self, name).requires_grad_(False)
            if self.use_batch_norm:
                getattr(self, bn_name(name)).requires_grad_(False)
                self._frozen_bn.add(bn_name(name))
        if freeze_bn and self.use_batch_norm:
            for name, module in self.named_children():
                if isinstance(module, nn.BatchNorm2d):
                    module.requires_grad_(False)
                    self._frozen_bn.add(name)
        self.train(self.training)

    def train(self, mode: bool = True) -> DetectNetV2:
        super().train(mode)
        for name in self._frozen_bn:
            getattr(self, name).eval()
        return self
