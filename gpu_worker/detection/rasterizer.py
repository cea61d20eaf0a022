"""Ground-truth rasteriser: boxes -> coverage, coverage-norm and bbox targets on the output grid.

Follows TAO's BboxRasterizer (`bbox_from_rumpy_params` + the rasterize_bbox kernel), vectorised over a
batch with torch ops (runs on the GPU next to the model):
- in output-grid units (input pixels / stride) a box gets a coverage ellipse centred at
  x1 + cov_center_x * w, with semi-axes cov_radius_x/y times the distance from that centre to the
  nearer box edge (half the extent for a centred ellipse), at least 0.1 and at least bbox_min_radius
  (keeping the aspect ratio when clamped);
- a deadzone ellipse interpolates between the coverage ellipse and the box half extents
  (`deadzone_radius`), never smaller than the coverage ellipse;
- each cell is supersampled 4 x 4: c = fraction of samples inside the coverage ellipse,
  a = fraction inside the deadzone; values are in [0, 1];
- per image and class, boxes are drawn back to front (ascending y2, a depth proxy): a box whose
  deadzone covers a cell at least as much as the current owner's coverage clears the cell (target 0,
  no bbox weight: the don't-care zone between near objects), and takes it when its own coverage > 0;
- targets: cov = c, cov_norm = c / max(4 * rx * ry, 1) (inverse area of the ellipse's bounding
  rectangle, in cells; weights the bbox loss), bbox = box_coder distances at the cell (not scaled by c).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gpu_worker.detection import box_coder

SUPERSAMPLES = 4  # per axis, as TAO's kernel
MIN_RADIUS = 0.1  # TAO's guard against degenerate boxes, in output cells


@dataclass(frozen=True)
class ClassRasterParams:
    cov_center_x: float = 0.5
    cov_center_y: float = 0.5
    cov_radius_x: float = 0.4
    cov_radius_y: float = 0.4
    bbox_min_radius: float = 1.0


@dataclass(frozen=True)
class RasterizerConfig:
    """Per-class ellipse parameters (channel order) + deadzone + box coding."""

    classes: tuple[ClassRasterParams, ...]
    deadzone_radius: float = 0.67
    scale: float = box_coder.DEFAULT_SCALE
    offset: float = box_coder.DEFAULT_OFFSET

    @classmethod
    def from_spec(cls, spec: Any, class_names: Sequence[str]) -> RasterizerConfig:
        """From a TAO Experiment's bbox_rasterizer_config and model_config.objective_set.bbox."""
        table = spec.bbox_rasterizer_config.target_class_config
        params = []
        for name in class_names:
            if name not in table:
                raise ValueError(f"bbox_rasterizer_config has no target_class_config for class {name!r}")
            entry = table[name]
            params.append(
                ClassRasterParams(
                    entry.cov_center_x,
                    entry.cov_center_y,
                    entry.cov_radius_x,
                    entry.cov_radius_y,
                    entry.bbox_min_radius,
                )
            )
        bbox = spec.model_config.objective_set.bbox
        return cls(
            classes=tuple(params),
            deadzone_radius=float(spec.bbox_rasterizer_config.deadzone_radius),
            scale=float(bbox.scale) or box_coder.DEFAULT_SCALE,
            offset=float(bbox.offset),
        )


class Targets(NamedTuple):
    cov: Tensor  # [B, C, h, w] in [0, 1]
    cov_norm: Tensor  # [B, C, h, w] >= 0, weights the bbox loss
    bbox: Tensor  # [B, 4C, h, w], coded as the bbox head


def _pad(gt_boxes: Sequence[Tensor], gt_classes: Sequence[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """Stack ragged per-image boxes into [B, M, 4] and classes [B, M] (-1 marks padding)."""
    batch = len(gt_boxes)
    most = max((int(b.shape[0]) for b in gt_boxes), default=0)
    boxes = torch.zeros(batch, max(most, 1), 4, device=device)
    classes = torch.full((batch, max(most, 1)), -1, dtype=torch.long, device=device)
    for i, (b, c) in enumerate(zip(gt_boxes, gt_classes, strict=True)):
        if b.shape[0]:
            boxes[i, : b.shape[0]] = b.to(device=device, dtype=torch.float32, non_blocking=True)
            classes[i, : b.shape[0]] = c.to(device=device, dtype=torch.long, non_blocking=True)
    return boxes, classes


def _ellipse_radii(
    x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor, params: Tensor, deadzone: float
) -> tuple[Tensor, ...]:
    """TAO's bbox_from_rumpy_params in output-grid units. params [..., 5] per box."""
    ccx, ccy, crx, cry, min_r = params.unbind(-1)
    cx = x1 + ccx * (x2 - x1)
    cy = y1 + ccy * (y2 - y1)
    sx = torch.where(ccx < 0.5, cx - x1, x2 - cx)
    sy = torch.where(ccy < 0.5, cy - y1, y2 - cy)
    csx = (crx * sx).clamp_min(MIN_RADIUS)
    csy = (cry * sy).clamp_min(MIN_RADIUS)
    # Clamp x to the minimum radius keeping the aspect ratio, then y likewise.
    csx, csy = csx.clamp_min(min_r), torch.where(csx < min_r, min_r * csy / csx, csy)
    csx, csy = torch.where(csy < min_r, min_r * csx / csy, csx), csy.clamp_min(min_r)
    dsx = torch.maximum((1.0 - deadzone) * csx + deadzone * sx, csx)
    dsy = torch.maximum((1.0 - deadzone) * csy + deadzone * sy, csy)
    inv_area = 1.0 / (4.0 * csx * csy).clamp_min(1.0)
    return cx, cy, csx, csy, dsx, dsy, inv_area


@functools.lru_cache(maxsize=16)
def _class_table(config: RasterizerConfig, device: torch.device) -> Tensor:
    """Per-class ellipse parameters [C, 5] on the device, built once: a fresh host copy every batch
    would synchronise the host with the GPU stream."""
    rows = [[p.cov_center_x, p.cov_center_y, p.cov_radius_x, p.cov_radius_y, p.bbox_min_radius] for p in config.classes]
    return torch.tensor(rows, dtype=torch.float32).to(device)


def _sample_offsets(device: torch.device) -> Tensor:
    return (torch.arange(SUPERSAMPLES, device=device, dtype=torch.float32) + 0.5) / SUPERSAMPLES


def _fractions(centre: Tensor, radius: Tensor, size: int, device: torch.device) -> Tensor:
    """Squared normalised distance of each sub-sample along one axis: [B, M, size, S]."""
    positions = torch.arange(size, device=device, dtype=torch.float32)[:, None] + _sample_offsets(device)  # [size, S]
    return ((positions - centre[..., None, None]) / radius[..., None, None]) ** 2


def rasterize(
    gt_boxes: Sequence[Tensor],
    gt_classes: Sequence[Tensor],
    config: RasterizerConfig,
    output_hw: tuple[int, int],
    input_hw: tuple[int, int],
    device: torch.device | str | None = None,
) -> Targets:
    """Targets for a batch. gt_boxes[i] is [Ni, 4] x1y1x2y2 in network-input pixels, gt_classes[i] [Ni]."""
    dev = torch.device(device) if device is not None else (gt_boxes[0].device if gt_boxes else torch.device("cpu"))
    out_h, out_w = output_hw
    stride_x, stride_y = input_hw[1] / out_w, input_hw[0] / out_h
    num_classes = len(config.classes)
    boxes, classes = _pad(gt_boxes, gt_classes, dev)  # [B, M, 4], [B, M]
    batch = boxes.shape[0]
    valid = classes >= 0
    # Back to front: ascending y2 per image; padding first (it never draws).
    order = torch.sort(
        torch.where(valid, boxes[..., 3], torch.full_like(boxes[..., 3], -torch.inf)), dim=1, stable=True
    )[1]
    boxes = torch.gather(boxes, 1, order[..., None].expand(-1, -1, 4))
    classes = torch.gather(classes, 1, order)
    valid = classes >= 0

    params = _class_table(config, dev)[classes.clamp_min(0)]  # [B, M, 5]
    x1, x2 = boxes[..., 0] / stride_x, boxes[..., 2] / stride_x
    y1, y2 = boxes[..., 1] / stride_y, boxes[..., 3] / stride_y
    cx, cy, csx, csy, dsx, dsy, inv_area = _ellipse_radii(x1, y1, x2, y2, params, config.deadzone_radius)

    # Supersampled inside-fractions, separable per axis then combined: [B, M, h, w].
    def coverage(rx: Tensor, ry: Tensor) -> Tensor:
        fx = _fractions(cx, rx, out_w, dev)  # [B, M, w, S]
        fy = _fractions(cy, ry, out_h, dev)  # [B, M, h, S]
        inside = (fy[:, :, :, None, :, None] + fx[:, :, None, :, None, :]) < 1.0  # [B, M, h, w, S, S]
        return inside.float().mean(dim=(-2, -1)) * valid[..., None, None]

    cov_frac = coverage(csx, csy)
    dead_frac = coverage(dsx, dsy)

    # Ownership, box slot by box slot (vectorised over batch, classes and cells).
    max_cov = torch.zeros(batch, num_classes, out_h, out_w, device=dev)
    owner = torch.full((batch, num_classes, out_h, out_w), -1, dtype=torch.long, device=dev)
    class_hot = torch.nn.functional.one_hot(classes.clamp_min(0), num_classes).bool() & valid[..., None]  # [B, M, C]
    for m in range(boxes.shape[1]):
        a = dead_frac[:, m, None]  # [B, 1, h, w]
        c = cov_frac[:, m, None]
        take = class_hot[:, m, :, None, None] & (a > 0) & (a >= max_cov)
        max_cov = torch.where(take, c, max_cov)
        owner = torch.where(take, torch.where(c > 0, m, -1), owner)

    has_owner = owner >= 0
    index = owner.clamp_min(0).flatten(1)  # [B, C*h*w]

    def gather(values: Tensor) -> Tensor:  # [B, M] -> [B, C, h, w]
        return torch.gather(values, 1, index).view(batch, num_classes, out_h, out_w)

    cov = max_cov * has_owner
    cov_norm = cov * gather(inv_area)
    gx, gy = box_coder.grid_points(out_h, out_w, offset=config.offset, stride=stride_x, device=dev)
    gy = torch.arange(out_h, device=dev, dtype=torch.float32) * stride_y + config.offset
    left = gx - gather(boxes[..., 0])
    top = gy[:, None] - gather(boxes[..., 1])
    right = gather(boxes[..., 2]) - gx
    bottom = gather(boxes[..., 3]) - gy[:, None]
    bbox = torch.stack([left, top, right, bottom], dim=2) / config.scale * has_owner[:, :, None]  # [B, C, 4, h, w]
    return Targets(cov=cov, cov_norm=cov_norm, bbox=bbox.reshape(batch, 4 * num_classes, out_h, out_w))
