"""DetectNet_v2 box coding: (left, top, right, bottom) distances from a grid cell, divided by a scale.

Output cell (row j, column i) has the grid point g = (i * stride + offset, j * stride + offset) in
network-input pixels. A box [x1, y1, x2, y2] is coded at that cell as
    ((gx - x1) / scale, (gy - y1) / scale, (x2 - gx) / scale, (y2 - gy) / scale),
as TAO's BboxObjective gradients, TAO Deploy, the DeepStream parser and CV-CUDA agree
(scale 35.0 and offset 0.5 are the spec's `objective_set.bbox {scale offset}`). Stateless functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_SCALE = 35.0
DEFAULT_OFFSET = 0.5
DEFAULT_STRIDE = 16


def grid_points(
    height: int,
    width: int,
    *,
    offset: float = DEFAULT_OFFSET,
    stride: float = DEFAULT_STRIDE,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Grid point coordinates in input pixels: gx [width] and gy [height]."""
    gx = torch.arange(width, device=device, dtype=torch.float32) * stride + offset
    gy = torch.arange(height, device=device, dtype=torch.float32) * stride + offset
    return gx, gy


def encode(
    boxes: Tensor,
    height: int,
    width: int,
    *,
    scale: float = DEFAULT_SCALE,
    offset: float = DEFAULT_OFFSET,
    stride: float = DEFAULT_STRIDE,
) -> Tensor:
    """Code boxes [..., 4] (x1, y1, x2, y2 in input pixels) at every cell: returns [..., 4, height, width]."""
    gx, gy = grid_points(height, width, offset=offset, stride=stride, device=boxes.device)
    x1, y1, x2, y2 = (boxes[..., k, None, None].float() for k in range(4))
    ones = torch.ones(height, width, device=boxes.device)
    left = (gx[None, :] - x1) * ones
    top = (gy[:, None] - y1) * ones
    right = (x2 - gx[None, :]) * ones
    bottom = (y2 - gy[:, None]) * ones
    return torch.stack([left, top, right, bottom], dim=-3) / scale


def decode(
    bbox: Tensor,
    *,
    scale: float = DEFAULT_SCALE,
    offset: float = DEFAULT_OFFSET,
    stride: float = DEFAULT_STRIDE,
    image_hw: tuple[int, int] | None = None,
) -> Tensor:
    """Decode the bbox head [N, 4C, h, w] into boxes [N, C, h, w, 4] (x1, y1, x2, y2, input pixels).

    With image_hw the boxes are clipped to the image (x2 >= x1, y2 >= y1), as TAO does; without it
    decode is the exact inverse of encode.
    """
    n, channels, height, width = bbox.shape
    if channels % 4:
        raise ValueError(f"bbox tensor needs 4 channels per class, got {channels}")
    gx, gy = grid_points(height, width, offset=offset, stride=stride, device=bbox.device)
    coded = bbox.float().reshape(n, channels // 4, 4, height, width) * scale  # [N, C, 4, h, w]
    x1 = gx - coded[:, :, 0]
    y1 = gy[:, None] - coded[:, :, 1]
    x2 = gx + coded[:, :, 2]
    y2 = gy[:, None] + coded[:, :, 3]
    if image_hw is not None:
        img_h, img_w = float(image_hw[0]), float(image_hw[1])
        x1 = x1.clamp(0.0, img_w)
        y1 = y1.clamp(0.0, img_h)
        x2 = torch.minimum(torch.maximum(x2, x1), torch.full_like(x2, img_w))
        y2 = torch.minimum(torch.maximum(y2, y1), torch.full_like(y2, img_h))
    return torch.stack([x1, y1, x2, y2], dim=-1)
