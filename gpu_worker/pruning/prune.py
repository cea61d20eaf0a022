"""Prune a DetectNetV2 the way `tao model detectnet_v2 prune` does, returning a smaller valid model.

Which filters survive is decided by `criteria` per conv layer; residual-tied layers
(`ChannelPlan.residual_groups()`) are equalised so the add still lines up; excluded layers and the
output heads keep every filter. The weights are then sliced: each conv's output channels (and its
batch norm), and the input channels of the convs that read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gpu_worker.detection.channel_plan import HEAD_LAYERS, ChannelPlan
from gpu_worker.detection.model import DetectNetV2, bn_name
from gpu_worker.errors import UserError
from gpu_worker.pruning.criteria import (
    Equalization,
    IndexArray,
    Normalizer,
    best_indices,
    filter_norms,
    merge,
    normalize,
    retained_indices,
)
from gpu_worker.pruning.reconstruct import ReconstructionSettings, reconstruct


@dataclass(frozen=True)
class PruneSettings:
    """TAO's `prune` options: -pth, -n, -eq, -pg, -nf, -el (defaults are TAO's)."""

    threshold: float = 0.1
    normalizer: Normalizer = Normalizer.MAX
    equalization: Equalization = Equalization.UNION
    granularity: int = 8
    min_num_filters: int = 16
    excluded_layers: tuple[str, ...] = field(default_factory=tuple)
    # Not TAO: measure each filter as conv + batch norm compute it (kernel x |gamma| / sqrt(var + eps)).
    # TAO's kernel-only norm assumes BN was trained alongside an L1-regularised kernel; where BN was
    # re-created around folded weights (importers/batchnorm.py) its scale, not the kernel, carries the size.
    scale_by_batch_norm: bool = False
    # Not TAO: every prunable layer (residual groups as one) keeps this share of its filters, the best ranked,
    # rounded up to the granularity, instead of a global threshold, which can take one layer from 80 filters to 16.
    keep_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.granularity < 1 or self.min_num_filters < 1:
            raise UserError("pruning granularity (-pg) and minimum filters (-nf) must be at least 1")
        if self.threshold < 0:
            raise UserError(f"pruning threshold (-pth) must not be negative, got {self.threshold}")
        if self.keep_fraction is not None and not 0 < self.keep_fraction <= 1:
            raise UserError(f"pruning keep fraction must be in (0, 1], got {self.keep_fraction}")


@dataclass(frozen=True)
class PruneResult:
    model: DetectNetV2
    kept: dict[str, IndexArray]  # layer -> sorted indices of the filters kept
    params_before: int
    params_after: int

    @property
    def ratio(self) -> float:
        """Parameters after / before (TAO's "pruning ratio")."""
        return self.params_after / self.params_before

    def kept_channels(self) -> dict[str, list[int]]:
        """`kept` as plain lists, as model-file metadata stores it (training/hints.py KEPT_CHANNELS_KEY)."""
        return {name: [int(i) for i in index] for name, index in self.kept.items()}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def input_producers(plan: ChannelPlan) -> dict[str, str | None]:
    """The conv whose output each conv reads (None for conv1, which reads the image)."""
    producers: dict[str, str | None] = {"conv1": None}
    previous = "conv1"
    for block in plan.blocks:
        producers[block.conv_1] = previous
        producers[block.conv_2] = block.conv_1
        if block.projection:
            producers[block.conv_shortcut] = previous
        previous = block.conv_2  # tied to the shortcut (or the block input) by the add
    for head in HEAD_LAYERS:
        producers[head] = previous
    return producers


def select_filters(model: DetectNetV2, settings: PruneSettings) -> dict[str, IndexArray]:
    """Indices of the filters each conv layer keeps under TAO's rules."""
    plan = model.plan
    unknown = set(settings.excluded_layers) - set(plan.widths)
    if unknown:
        raise UserError(f"excluded layers (-el) not in the model: {sorted(unknown)}; layers are {list(plan.widths)}")
    excluded = set(settings.excluded_layers) | set(HEAD_LAYERS)
    weights = {name: conv.weight.detach().cpu().numpy() for name, conv in model.conv_layers()}
    norms = {name: filter_norms(w) for name, w in weights.items()}
    if settings.scale_by_batch_norm and model.use_batch_norm:
        for name in norms:
            if name not in HEAD_LAYERS:
                norms[name] = norms[name] * batch_norm_scale(model, name)
    stats = {name: normalize(n, settings.normalizer) for name, n in norms.items()}

    def keep(stat: np.ndarray) -> IndexArray:
        if settings.keep_fraction is not None:
            count = math.ceil(len(stat) * settings.keep_fraction)
            return best_indices(stat, count, settings.granularity, settings.min_num_filters)
        return retained_indices(stat, settings.threshold, settings.granularity, settings.min_num_filters)

    kept: dict[str, IndexArray] = {}
    for name, width in plan.widths.items():
        kept[name] = np.arange(width, dtype=np.int64) if name in excluded else keep(stats[name])
    for group in plan.residual_groups():
        if excluded & set(group):
            shared = np.arange(plan.widths[group[0]], dtype=np.int64)
        else:
            shared = keep(merge([stats[name] for name in group], settings.equalization))
        for name in group:
            kept[name] = shared
    return kept


def batch_norm_scale(model: DetectNetV2, conv: str) -> np.ndarray:
    """|gamma| / sqrt(running_var + eps) of the batch norm after `conv`: its per-channel gain."""
    bn = getattr(model, bn_name(conv))
    scale = bn.weight.detach().abs() / torch.sqrt(bn.running_var.detach() + bn.eps)
    return scale.cpu().numpy().astype(np.float64)


def removed_channel_values(model: DetectNetV2, kept: dict[str, IndexArray]) -> dict[str, torch.Tensor]:
    """Per producer layer, the activation each of its channels has when its kernel is taken as zero.

    A filter with a small kernel but a large bias (typical once batch norm is folded into the bias, as
    in the PeopleNet TFLite) outputs a near-constant act(bn(bias)); dropping it silently would shift
    every consumer. For the block outputs the value follows the add: act(conv_2 + shortcut), with an
    identity shortcut carrying the previous block's value.
    """
    source = model.state_dict()

    def act(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if str(model.activation) == "relu" else torch.clamp(x, 0.0, 6.0)

    def unit(name: str) -> torch.Tensor:
        value = source[f"{name}.bias"].float()
        if model.use_batch_norm:
            bn = bn_name(name)
            std = torch.sqrt(source[f"{bn}.running_var"].float() + model_bn_eps(model, bn))
            value = (value - source[f"{bn}.running_mean"]) / std * source[f"{bn}.weight"] + source[f"{bn}.bias"]
        return value

    values = {"conv1": act(unit("conv1"))}
    previous = values["conv1"]
    for block in model.plan.blocks:
        values[block.conv_1] = act(unit(block.conv_1))
        shortcut = unit(block.conv_shortcut) if block.projection else previous
        previous = act(unit(block.conv_2) + shortcut)
        values[block.conv_2] = previous
    return values


def mean_activations(model: DetectNetV2, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per producer layer, the mean over `images` [N, 3, H, W] of each output channel after activation.

    These replace the zero-kernel constants of `removed_channel_values` when data is at hand: a
    removed channel then contributes its average instead of nothing.
    """
    sums: dict[str, torch.Tensor] = {}
    model = model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(images), 4):
            x = images[start : start + 4].to(device)
            x = model._act(model._unit("conv1", x))
            sums["conv1"] = sums.get("conv1", 0) + x.mean(dim=(2, 3)).sum(0)
            for block in model.plan.blocks:
                y = model._act(model._unit(block.conv_1, x))
                sums[block.conv_1] = sums.get(block.conv_1, 0) + y.mean(dim=(2, 3)).sum(0)
                x = model._block(block, x)
                sums[block.conv_2] = sums.get(block.conv_2, 0) + x.mean(dim=(2, 3)).sum(0)
    return {name: (total / len(images)).float().cpu() for name, total in sums.items()}


def model_bn_eps(model: DetectNetV2, bn: str) -> float:
    return float(getattr(model, bn).eps)


def apply_selection(
    model: DetectNetV2,
    kept: dict[str, IndexArray],
    compensate: bool = True,
    channel_values: dict[str, torch.Tensor] | None = None,
) -> DetectNetV2:
    """A new model holding only the kept filters (and the matching input channels downstream).

    With `compensate`, each removed input channel's constant value (see `removed_channel_values`)
    is folded into the consumer's bias, so what the pruned filters contributed as an offset stays.
    """
    plan = model.plan
    new_plan = ChannelPlan(
        num_layers=plan.num_layers,
        all_projections=plan.all_projections,
        num_classes=plan.num_classes,
        widths={name: len(kept[name]) for name in plan.widths},
    )
    new_plan.validate()
    pruned = DetectNetV2(new_plan, use_batch_norm=model.use_batch_norm, activation=model.activation)
    source = model.state_dict()
    constants = channel_values or (removed_channel_values(model, kept) if compensate else {})
    state: dict[str, torch.Tensor] = {}
    for name, producer in input_producers(plan).items():
        out_idx = torch.from_numpy(kept[name])
        weight = source[f"{name}.weight"].index_select(0, out_idx)
        bias = source[f"{name}.bias"].clone()
        if producer is not None:
            weight = weight.index_select(1, torch.from_numpy(kept[producer]))
            removed = np.setdiff1d(np.arange(plan.widths[producer]), kept[producer])
            if compensate and removed.size:
                dropped = source[f"{name}.weight"][:, torch.from_numpy(removed)]  # [O, removed, kh, kw]
                bias = bias + torch.einsum("orhw,r->o", dropped.float(), constants[producer][torch.from_numpy(removed)])
        state[f"{name}.weight"] = weight
        state[f"{name}.bias"] = bias.index_select(0, out_idx).to(source[f"{name}.bias"].dtype)
        if model.use_batch_norm and name not in HEAD_LAYERS:
            bn = bn_name(name)
            for part in ("weight", "bias", "running_mean", "running_var"):
                state[f"{bn}.{part}"] = source[f"{bn}.{part}"].index_select(0, out_idx)
            state[f"{bn}.num_batches_tracked"] = source[f"{bn}.num_batches_tracked"].clone()
    pruned.load_state_dict(state)
    return pruned.train(model.training)


def prune_model(
    model: DetectNetV2,
    settings: PruneSettings | None = None,
    compensate: bool = True,
    calibration: torch.Tensor | None = None,
    reconstruction: ReconstructionSettings | None = None,
) -> PruneResult:
    """Select (TAO rules) and slice. `calibration` images [N, 3, H, W] in [0, 1] make the bias
    compensation use mean activations; without them it uses the zero-kernel constants. With
    `reconstruction` too, every conv after conv1 is then refitted on them by least squares (reconstruct.py)."""
    settings = settings or PruneSettings()
    kept = select_filters(model, settings)
    values = mean_activations(model, calibration) if compensate and calibration is not None else None
    pruned = apply_selection(model, kept, compensate, values)
    if reconstruction is not None:
        if calibration is None:
            raise UserError("least-squares reconstruction after pruning needs calibration images")
        pruned = reconstruct(model, pruned, kept, calibration, reconstruction)
    return PruneResult(pruned, kept, count_params(model), count_params(pruned))


def parse_layers(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """-el accepts TAO's space-separated list and comma-separated names alike."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(name.strip() for item in items for name in item.replace(",", " ").split() if name.strip())
