"""Refit a pruned model's convs by least squares so each reproduces the unpruned model's conv output.

Slicing away filters leaves every consumer reading fewer channels than it was trained on; mean-activation
bias compensation only restores their average. Channel-pruning reconstruction (He et al., "Channel Pruning
for Accelerating Very Deep Neural Networks", 2017; Luo et al., ThiNet, 2017) refits each consumer's kernel
on the channels that are left, so that its output on real images matches the original's. Layers are
processed in graph order with the *pruned* network's (already refitted) inputs and the *original* network's
outputs as targets, so the error of one layer is corrected by the next instead of accumulating.

Each conv's output channel is an independent linear regression of its raw (pre-batch-norm) output on the
unfolded input patches plus a bias; batch norm and activation are kept as they are. The normal equations are
accumulated over a random sample of output positions per image and solved with a small ridge term.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gpu_worker.detection.channel_plan import HEAD_LAYERS
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.pruning.criteria import IndexArray


@dataclass(frozen=True)
class ReconstructionSettings:
    positions_per_image: int = 2048  # sampled output positions per image and layer
    ridge: float = 1e-3  # relative to the mean diagonal of X^T X
    batch_size: int = 4
    seed: int = 0
    device: str = "cpu"  # where the refit runs; the returned model is on the CPU


def reconstruct(
    original: DetectNetV2,
    pruned: DetectNetV2,
    kept: dict[str, IndexArray],
    images: Tensor,
    settings: ReconstructionSettings | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> DetectNetV2:
    """Refit every conv of `pruned` after conv1 against `original` on `images` [N, 3, H, W] in [0, 1];
    `kept` maps each original layer to the output channels `pruned` holds. Returns the refitted copy."""
    settings = settings or ReconstructionSettings()
    device = torch.device(settings.device)
    original = copy.deepcopy(original).to(device).eval()
    pruned = copy.deepcopy(pruned).to(device).eval()
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    with torch.no_grad():
        # Per image batch: (original activations, pruned activations) at the current point of the graph.
        pairs = [
            (original._act(original._unit("conv1", x)), pruned._act(pruned._unit("conv1", x)))
            for x in _batches(images, settings.batch_size, device)
        ]
        for block in original.plan.blocks:
            _refit(original, pruned, block.conv_1, pairs, kept, settings, generator)
            inner = [
                (original._act(original._unit(block.conv_1, o)), pruned._act(pruned._unit(block.conv_1, p)))
                for o, p in pairs
            ]
            _refit(original, pruned, block.conv_2, inner, kept, settings, generator)
            if block.projection:
                _refit(original, pruned, block.conv_shortcut, pairs, kept, settings, generator)
            pairs = [(original._block(block, o), pruned._block(block, p)) for o, p in pairs]
            progress(f"reconstructed {block.prefix}")
        for head in HEAD_LAYERS:
            _refit(original, pruned, head, pairs, kept, settings, generator)
    return pruned.cpu()


def _batches(images: Tensor, size: int, device: torch.device) -> Iterator[Tensor]:
    for start in range(0, len(images), size):
        yield images[start : start + size].to(device)


def _refit(
    original: DetectNetV2,
    pruned: DetectNetV2,
    name: str,
    pairs: list[tuple[Tensor, Tensor]],
    kept: dict[str, IndexArray],
    settings: ReconstructionSettings,
    generator: torch.Generator,
) -> None:
    """Least-squares kernel and bias of `pruned.<name>` from its inputs to `original.<name>`'s kept outputs."""
    source: nn.Conv2d = getattr(original, name)
    target: nn.Conv2d = getattr(pruned, name)
    out_index = torch.as_tensor(kept[name], device=source.weight.device)
    features = target.in_channels * target.kernel_size[0] * target.kernel_size[1] + 1
    gram = torch.zeros(features, features, dtype=torch.float64, device=source.weight.device)
    cross = torch.zeros(features, target.out_channels, dtype=torch.float64, device=source.weight.device)
    padding = (int(target.padding[0]), int(target.padding[1]))  # numeric: every conv pads k // 2
    for original_input, pruned_input in pairs:
        wanted = source(original_input).index_select(1, out_index)  # [B, O, h, w]
        patches = nn.functional.unfold(
            pruned_input, target.kernel_size, padding=padding, stride=target.stride
        )  # [B, I*k*k, h*w]
        y = wanted.flatten(2)
        count = min(settings.positions_per_image, y.shape[2])
        for b in range(len(patches)):
            pick = torch.randperm(y.shape[2], generator=generator)[:count].to(patches.device)
            x = patches[b][:, pick].T.double()  # [count, I*k*k]
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)
            gram += x.T @ x
            cross += x.T @ y[b][:, pick].T.double()
    diagonal = torch.diagonal(gram)[:-1].mean().clamp_min(1e-12)
    regulariser = torch.eye(features, dtype=gram.dtype, device=gram.device) * settings.ridge * diagonal
    regulariser[-1, -1] = 0.0  # the bias is not shrunk
    solution = torch.linalg.solve(gram + regulariser, cross)  # [features, O]
    target.weight.copy_(solution[:-1].T.reshape(target.weight.shape).to(target.weight.dtype))
    assert target.bias is not None  # every conv of the model has a bias
    target.bias.copy_(solution[-1].to(target.bias.dtype))
