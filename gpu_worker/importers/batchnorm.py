"""Re-create batch norm in a BN-folded DetectNetV2 (e.g. the PeopleNet TFLite) without changing its outputs.

The folded model trains poorly once it is damaged (pruned): nothing re-normalises the activations, so
shifted channel statistics propagate through 30+ layers of ReLU6. Inserting a BatchNorm2d after every
backbone conv gives training that handle back. A plain identity BN (gamma 1, beta 0, mean 0, var 1)
is exact only in eval mode: in train mode it would normalise by the batch statistics and change the
function at step 0. So the BN is *calibrated*: per channel, mean m and variance v of the conv output
over a few images, then running_mean = m, running_var = v, gamma = sqrt(v + eps), beta = m. In eval
mode that is exactly the identity; in train mode, with batch statistics close to (m, v), it is close
to it, and the fine-tune starts from PeopleNet's function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gpu_worker.detection.channel_plan import HEAD_LAYERS
from gpu_worker.detection.model import DetectNetV2, bn_name


@torch.no_grad()
def conv_output_stats(model: DetectNetV2, images: Tensor, batch_size: int = 4) -> dict[str, tuple[Tensor, Tensor]]:
    """Per backbone conv, (mean, variance) of each output channel (before BN/activation) over `images`."""
    sums: dict[str, Tensor] = {}
    squares: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []

    def hook(name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def record(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            y = output.detach().double()
            sums[name] = sums.get(name, 0) + y.sum(dim=(0, 2, 3))
            squares[name] = squares.get(name, 0) + (y * y).sum(dim=(0, 2, 3))
            counts[name] = counts.get(name, 0) + y.numel() // y.shape[1]

        return record

    for name, conv in model.conv_layers():
        if name not in HEAD_LAYERS:
            hooks.append(conv.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size].to(device))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    stats = {}
    for name, total in sums.items():
        mean = total / counts[name]
        var = (squares[name] / counts[name] - mean * mean).clamp_min(0.0)
        stats[name] = (mean.float().cpu(), var.float().cpu())
    return stats


def recreate_batch_norm(model: DetectNetV2, images: Tensor) -> DetectNetV2:
    """A use_batch_norm=True copy of a folded `model`, BN calibrated on `images` [N, 3, H, W] in [0, 1].

    Eval-mode outputs equal the input model's (up to float rounding). A model that already has batch
    norm is returned unchanged.
    """
    if model.use_batch_norm:
        return model
    stats = conv_output_stats(model, images)
    rebuilt = DetectNetV2(model.plan, use_batch_norm=True, activation=model.activation)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    for name, (mean, var) in stats.items():
        bn = bn_name(name)
        eps = float(getattr(rebuilt, bn).eps)
        state[f"{bn}.running_mean"] = mean
        state[f"{bn}.running_var"] = var
        state[f"{bn}.weight"] = torch.sqrt(var + eps)
        state[f"{bn}.bias"] = mean
        state[f"{bn}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    rebuilt.load_state_dict(state)
    return rebuilt.train(model.training)
