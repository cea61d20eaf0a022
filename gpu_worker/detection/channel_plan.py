"""The explicit per-layer channel plan of a DetectNet_v2 ResNet (pruned models have irregular widths).

Layer names follow TAO's Keras template: `conv1`, `block_<stage><letter>_conv_{1,2,shortcut}`,
`output_cov`, `output_bbox`. Stage widths 64/128/256/512 unpruned; stride 2 in conv1 and stages 1-3,
stride 1 in stage 4 (no max-pool), so the output stride is 16.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from string import ascii_lowercase

BLOCKS_PER_STAGE: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}
STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (2, 2, 2, 1)
OUTPUT_STRIDE = 16
HEAD_LAYERS = ("output_cov", "output_bbox")  # the two 1x1 heads: coverage, bbox


@dataclass(frozen=True)
class BlockSpec:
    """One residual block: names of its convs, stride, and whether its shortcut is a projection."""

    prefix: str  # e.g. "block_2a"
    stage: int  # 1..4
    stride: int
    projection: bool

    @property
    def conv_1(self) -> str:
        return f"{self.prefix}_conv_1"

    @property
    def conv_2(self) -> str:
        return f"{self.prefix}_conv_2"

    @property
    def conv_shortcut(self) -> str:
        return f"{self.prefix}_conv_shortcut"


def block_specs(num_layers: int, all_projections: bool) -> list[BlockSpec]:
    if num_layers not in BLOCKS_PER_STAGE:
        raise ValueError(f"num_layers {num_layers} not supported; use one of {sorted(BLOCKS_PER_STAGE)}")
    specs: list[BlockSpec] = []
    for stage, count in enumerate(BLOCKS_PER_STAGE[num_layers], start=1):
        for index in range(count):
            first = index == 0
            # conv1 (64) feeds stage 1 (64): with strides 2 there the shape changes at every first block.
            specs.append(
                BlockSpec(
                    prefix=f"block_{stage}{ascii_lowercase[index]}",
                    stage=stage,
                    stride=STAGE_STRIDES[stage - 1] if first else 1,
                    projection=all_projections or first,
                )
            )
    return specs


@dataclass(frozen=True)
class ChannelPlan:
    """Output channels of every conv layer, by TAO layer name."""

    num_layers: int
    all_projections: bool
    num_classes: int
    widths: dict[str, int] = field(default_factory=dict)

    @classmethod
    def standard(cls, num_layers: int, num_classes: int, all_projections: bool = True) -> ChannelPlan:
        """The unpruned plan: 64 in conv1, stage widths 64/128/256/512."""
        widths = {"conv1": 64}
        for block in block_specs(num_layers, all_projections):
            width = STAGE_WIDTHS[block.stage - 1]
            widths[block.conv_1] = width
            widths[block.conv_2] = width
            if block.projection:
                widths[block.conv_shortcut] = width
        widths["output_cov"] = num_classes
        widths["output_bbox"] = 4 * num_classes
        plan = cls(num_layers=num_layers, all_projections=all_projections, num_classes=num_classes, widths=widths)
        plan.validate()
        return plan

    @property
    def blocks(self) -> list[BlockSpec]:
        return block_specs(self.num_layers, self.all_projections)

    def in_channels(self, layer: str, input_channels: int = 3) -> int:
        """Channels entering a conv layer, derived from the plan."""
        if layer == "conv1":
            return input_channels
        previous = self.widths["conv1"]
        for block in self.blocks:
            if layer in (block.conv_1, block.conv_shortcut):
                return previous
            if layer == block.conv_2:
                return self.widths[block.conv_1]
            previous = self.block_output(block)
        if layer in HEAD_LAYERS:
            return previous
        raise KeyError(layer)

    def block_output(self, block: BlockSpec) -> int:
        return self.widths[block.conv_2]

    def residual_groups(self) -> list[list[str]]:
        """Sets of layers whose outputs are added together and so must keep equal channels.

        An identity shortcut ties a block's conv_2 to whatever produced its input.
        """
        groups: list[list[str]] = []
        current = ["conv1"]
        for block in self.blocks:
            if block.projection:
                if len(current) > 1 or current == ["conv1"]:
                    groups.append(current)
                current = [block.conv_2, block.conv_shortcut]
            else:
                current.append(block.conv_2)
        groups.append(current)
        return [g for g in groups if len(g) > 1]

    def validate(self) -> None:
        """Every layer present, widths positive, residual-tied widths equal, heads sized by classes."""
        expected = {"conv1", "output_cov", "output_bbox"}
        for block in self.blocks:
            expected |= {block.conv_1, block.conv_2}
            if block.projection:
                expected.add(block.conv_shortcut)
        missing = expected - self.widths.keys()
        extra = self.widths.keys() - expected
        if missing or extra:
            raise ValueError(f"channel plan mismatch: missing {sorted(missing)}, unexpected {sorted(extra)}")
        bad = {name: w for name, w in self.widths.items() if w < 1}
        if bad:
            raise ValueError(f"channel plan has non-positive widths: {bad}")
        for group in self.residual_groups():
            widths = {name: self.widths[name] for name in group}
            if len(set(widths.values())) != 1:
                raise ValueError(f"layers tied by a residual add have different widths: {widths}")
        if self.widths["output_cov"] != self.num_classes or self.widths["output_bbox"] != 4 * self.num_classes:
            raise ValueError(
                f"heads must have {self.num_classes} and {4 * self.num_classes} channels, "
                f"got {self.widths['output_cov']} and {self.widths['output_bbox']}"
            )

    def to_json(self) -> str:
        return json.dumps(
            {
                "num_layers": self.num_layers,
                "all_projections": self.all_projections,
                "num_classes": self.num_classes,
                "widths": self.widths,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ChannelPlan:
        data = json.loads(text)
        plan = cls(
            num_layers=int(data["num_layers"]),
            all_projections=bool(data["all_projections"]),
            num_classes=int(data["num_classes"]),
            widths={str(k): int(v) for k, v in data["widths"].items()},
        )
        plan.validate()
        return plan
