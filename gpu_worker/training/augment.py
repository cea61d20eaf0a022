"""Batched on-device augmentation per the spec's `augmentation_config` (torch ops; CPU or CUDA).

Spatial: flips, zoom, rotation and translation are folded into one affine matrix per image and applied
with a single `grid_sample`; boxes go through the same matrix (axis-aligned hull of the four corners),
are clipped to the frame and dropped below `min_bbox_width`/`min_bbox_height`. Flips and zoom act on
the letterboxed *content* (not the zero padding), so padding stays right/bottom as at inference.
Colour: hue rotation (about the grey axis), saturation, contrast and per-channel shift are folded into
one 3x3 matrix plus offset per image. Every random draw comes from a CPU `torch.Generator`, so results
do not depend on the device and repeat exactly for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from gpu_worker.specs.proto.experiment_pb2 import Experiment

# ITU-R BT.601 luma weights: saturation blends towards this grey.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentation settings, with TAO's meaning (`augmentation_config` of the experiment spec)."""

    hflip_probability: float = 0.0
    vflip_probability: float = 0.0
    zoom_min: float = 1.0  # content scale factor; > 1 zooms in
    zoom_max: float = 1.0
    translate_max_x: float = 0.0  # network-input pixels, uniform in [-max, max]
    translate_max_y: float = 0.0
    rotate_rad_max: float = 0.0  # radians, uniform in [-max, max]
    rotate_probability: float = 1.0  # chance of rotating at all when rotate_rad_max > 0
    color_shift_stddev: float = 0.0  # per-channel additive shift, N(0, stddev), pixel range [0, 1]
    hue_rotation_max: float = 0.0  # degrees, uniform in [-max, max]
    saturation_shift_max: float = 0.0  # saturation factor uniform in [1 - max, 1 + max]
    contrast_scale_max: float = 0.0  # contrast factor uniform in [1 - max, 1 + max] ...
    contrast_center: float = 0.5  # ... about this pixel value
    min_bbox_width: float = 0.0  # boxes narrower/shorter than this after augmentation are dropped
    min_bbox_height: float = 0.0

    @classmethod
    def from_spec(cls, spec: Experiment) -> AugmentConfig:
        aug = spec.augmentation_config
        spatial, color, pre = aug.spatial_augmentation, aug.color_augmentation, aug.preprocessing
        # proto3 reports unset floats as 0; a zoom of 0 means "not configured", i.e. no zoom.
        zoom_min = spatial.zoom_min or 1.0
        zoom_max = spatial.zoom_max or 1.0
        return cls(
            hflip_probability=spatial.hflip_probability,
            vflip_probability=spatial.vflip_probability,
            zoom_min=min(zoom_min, zoom_max),
            zoom_max=max(zoom_min, zoom_max),
            translate_max_x=spatial.translate_max_x,
            translate_max_y=spatial.translate_max_y,
            rotate_rad_max=spatial.rotate_rad_max,
            rotate_probability=spatial.rotate_probability if spatial.rotate_probability > 0 else 1.0,
            color_shift_stddev=color.color_shift_stddev,
            hue_rotation_max=color.hue_rotation_max,
            saturation_shift_max=color.saturation_shift_max,
            contrast_scale_max=color.contrast_scale_max,
            # Unset (0) means TAO's usual centre 0.5; the centre only matters when contrast_scale_max > 0.
            contrast_center=color.contrast_center or 0.5,
            min_bbox_width=pre.min_bbox_width,
            min_bbox_height=pre.min_bbox_height,
        )

    @property
    def spatial_enabled(self) -> bool:
        return (
            self.hflip_probability > 0
            or self.vflip_probability > 0
            or self.zoom_min != 1.0
            or self.zoom_max != 1.0
            or self.translate_max_x > 0
            or self.translate_max_y > 0
            or self.rotate_rad_max > 0
        )

    @property
    def color_enabled(self) -> bool:
        return (
            self.color_shift_stddev > 0
            or self.hue_rotation_max > 0
            or self.saturation_shift_max > 0
            or self.contrast_scale_max > 0
        )


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def spatial_matrices(config: AugmentConfig, content_sizes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Forward affine maps [B, 3, 3] (float64, pixel coordinates) from source to augmented image.

    `content_sizes` [B, 2] holds (width, height) of the letterboxed content of each image. Draws a fixed
    number of random values per image whatever the config, so one setting never shifts another's draws.
    """
    n = content_sizes.shape[0]
    hflip = torch.rand(n, generator=generator, dtype=torch.float64) < config.hflip_probability
    vflip = torch.rand(n, generator=generator, dtype=torch.float64) < config.vflip_probability
    zoom = _uniform(generator, n, config.zoom_min, config.zoom_max)
    angle = _uniform(generator, n, -config.rotate_rad_max, config.rotate_rad_max)
    rotate = torch.rand(n, generator=generator, dtype=torch.float64) < config.rotate_probability
    tx = _uniform(generator, n, -config.translate_max_x, config.translate_max_x)
    ty = _uniform(generator, n, -config.translate_max_y, config.translate_max_y)
    angle = torch.where(rotate, angle, torch.zeros_like(angle))

    cw = content_sizes[:, 0].to(torch.float64)
    ch = content_sizes[:, 1].to(torch.float64)
    cx, cy = cw / 2, ch / 2
    # Flip about the content box: x -> cw - x keeps the padding on the right.
    sx = torch.where(hflip, -1.0, 1.0).to(torch.float64)
    sy = torch.where(vflip, -1.0, 1.0).to(torch.float64)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Map centred coordinates p - c: flip, then zoom and rotate about the content centre, then translate.
    a = zoom * cos * sx
    b = -zoom * sin * sy
    c = zoom * sin * sx
    d = zoom * cos * sy
    matrices = torch.zeros(n, 3, 3, dtype=torch.float64)
    matrices[:, 0, 0], matrices[:, 0, 1] = a, b
    matrices[:, 1, 0], matrices[:, 1, 1] = c, d
    matrices[:, 0, 2] = cx + tx - (a * cx + b * cy)
    matrices[:, 1, 2] = cy + ty - (c * cx + d * cy)
    matrices[:, 2, 2] = 1.0
    return matrices


def warp_theta(matrices: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """`affine_grid` thetas [B, 2, 3] (float64, host) for forward pixel-space maps [B, 3, 3]."""
    # Normalised coords of affine_grid (align_corners=False): u = 2 x / W - 1 with x the continuous pixel
    # coordinate (pixel i spans [i, i + 1]); theta maps output -> input, so invert the forward map.
    to_norm = torch.tensor([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return (to_norm @ torch.linalg.inv(matrices) @ torch.linalg.inv(to_norm))[:, :2, :].contiguous()


def warp_with_theta(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample images [B, C, H, W] through `affine_grid` thetas [B, 2, 3] (bilinear, zero fill)."""
    # Device first (asynchronous from pinned memory), then the dtype: same values as converting first.
    theta = theta.to(device=images.device, non_blocking=True).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_images(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply forward pixel-space affine maps [B, 3, 3] to images [B, C, H, W] (bilinear, zero fill)."""
    _, _, height, width = images.shape
    return warp_with_theta(images, warp_theta(matrices, width, height))


def transform_boxes(
    boxes: torch.Tensor, classes: torch.Tensor, matrix: torch.Tensor, width: int, height: int, config: AugmentConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move boxes [N, 4] (x1, y1, x2, y2) through a forward map [3, 3]; clip; drop small or outside boxes."""
    if boxes.numel() == 0:
        return boxes, classes
    m = matrix.to(device=boxes.device, dtype=torch.float32)
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack(
        [torch.stack([x1, y1], 1), torch.stack([x2, y1], 1), torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], 1
    )  # [N, 4 corners, 2]
    moved = corners @ m[:2, :2].T + m[:2, 2]
    lo = moved.amin(dim=1)
    hi = moved.amax(dim=1)
    out = torch.cat([lo, hi], dim=1)
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return filter_small_boxes(out, classes, config.min_bbox_width, config.min_bbox_height)


def filter_small_boxes(
    boxes: torch.Tensor, classes: torch.Tensor, min_width: float, min_height: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep boxes with positive area that are at least `min_width` x `min_height` pixels."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (w > 0) & (h > 0) & (w >= min_width) & (h >= min_height)
    return boxes[keep], classes[keep]


def color_transforms(config: AugmentConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image colour maps: matrices [B, 3, 3] and offsets [B, 3] (float64), pixel range [0, 1]."""
    hue = _uniform(generator, n, -config.hue_rotation_max, config.hue_rotation_max) * (math.pi / 180.0)
    saturation = _uniform(generator, n, 1.0 - config.saturation_shift_max, 1.0 + config.saturation_shift_max)
    contrast = _uniform(generator, n, 1.0 - config.contrast_scale_max, 1.0 + config.contrast_scale_max)
    shift = torch.randn(n, 3, generator=generator, dtype=torch.float64) * config.color_shift_stddev

    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    # Rodrigues rotation about the grey axis k = (1, 1, 1) / sqrt(3): keeps greys grey.
    k = torch.full((3,), 1.0 / math.sqrt(3.0), dtype=torch.float64)
    k_cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=torch.float64)
    cos, sin = torch.cos(hue)[:, None, None], torch.sin(hue)[:, None, None]
    hue_m = cos * eye + sin * k_cross + (1 - cos) * torch.outer(k, k)
    luma = torch.tensor(_LUMA, dtype=torch.float64)
    grey = torch.ones(3, 1, dtype=torch.float64) @ luma[None, :]  # rows all = luma
    s = saturation[:, None, None]
    sat_m = s * eye + (1 - s) * grey
    c = contrast[:, None, None]
    matrices = c * (sat_m @ hue_m)
    offsets = (1 - contrast)[:, None] * config.contrast_center + shift
    return matrices, offsets


def apply_color(images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """images [B, 3, H, W] in [0, 1] -> A @ pixel + b per image, clamped to [0, 1]."""
    b, c, h, w = images.shape
    m = matrices.to(device=images.device, non_blocking=True).to(images.dtype)
    o = offsets.to(device=images.device, non_blocking=True).to(images.dtype)
    out = torch.bmm(m, images.reshape(b, c, h * w)) + o[:, :, None]
    return out.reshape(b, c, h, w).clamp_(0.0, 1.0)


def transform_boxes_flat(
    boxes: torch.Tensor, image_of_box: torch.Tensor, matrices: torch.Tensor, width: int, height: int
) -> torch.Tensor:
    """Boxes [M, 4] of a whole batch through their image's forward map (matrices [B, 3, 3]); clipped."""
    m = matrices.to(device=boxes.device, dtype=torch.float32)[image_of_box]  # [M, 3, 3]
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack(
        [torch.stack([x1, y1], 1), torch.stack([x2, y1], 1), torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], 1
    )  # [M, 4 corners, 2]
    moved = corners @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    out = torch.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=1)
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return out


@dataclass
class AugmentPlan:
    """One batch's augmentation decided on the host: what the images get on the device, and the boxes
    already moved, clipped and filtered (they are tiny; on the host their kept counts need no GPU sync)."""

    theta: torch.Tensor | None  # [B, 2, 3] float64 affine_grid thetas; None: no spatial augmentation
    color_matrices: torch.Tensor | None  # [B, 3, 3] float64; None: no colour augmentation
    color_offsets: torch.Tensor | None  # [B, 3] float64
    boxes: torch.Tensor  # [K, 4] float32, the kept boxes image by image
    classes: torch.Tensor  # [K] int64
    counts: list[int]  # kept boxes per image

    def pin_memory(self) -> AugmentPlan:
        """Page-locked copies, so the device copies can be asynchronous."""

        def pin(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory()

        return AugmentPlan(
            pin(self.theta),
            pin(self.color_matrices),
            pin(self.color_offsets),
            self.boxes.pin_memory(),
            self.classes.pin_memory(),
            self.counts,
        )


def plan_augment(
    boxes: torch.Tensor,
    classes: torch.Tensor,
    counts: list[int],
    content_sizes: torch.Tensor,
    image_hw: tuple[int, int],
    config: AugmentConfig,
    generator: torch.Generator,
) -> AugmentPlan:
    """Draw a batch's augmentation and move its boxes (host tensors [M, 4], [M]; `counts` per image)."""
    n = content_sizes.shape[0]
    height, width = image_hw
    matrices = spatial_matrices(config, content_sizes, generator)
    color_m, color_o = color_transforms(config, n, generator)
    image_of_box = torch.repeat_interleave(torch.arange(n), torch.tensor(counts, dtype=torch.long))
    theta = None
    if config.spatial_enabled:
        theta = warp_theta(matrices, width, height)
        if boxes.numel():
            boxes = transform_boxes_flat(boxes, image_of_box, matrices, width, height)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (w > 0) & (h > 0) & (w >= config.min_bbox_width) & (h >= config.min_bbox_height)
    kept_counts = torch.bincount(image_of_box[keep], minlength=n).tolist()
    colour = config.color_enabled
    return AugmentPlan(
        theta=theta,
        color_matrices=color_m if colour else None,
        color_offsets=color_o if colour else None,
        boxes=boxes[keep],
        classes=classes[keep],
        counts=kept_counts,
    )


def apply_plan(images: torch.Tensor, plan: AugmentPlan) -> torch.Tensor:
    """The image side of a plan on images [B, 3, H, W] in [0, 1] (device ops, no host sync)."""
    if plan.theta is not None:
        images = warp_with_theta(images, plan.theta)
    if plan.color_matrices is not None and plan.color_offsets is not None:
        images = apply_color(images, plan.color_matrices, plan.color_offsets)
    return images


def augment_flat(
    images: torch.Tensor,
    boxes: torch.Tensor,
    classes: torch.Tensor,
    counts: list[int],
    content_sizes: torch.Tensor,
    config: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """`augment_batch` on the batch's boxes concatenated ([M, 4], [M], `counts` boxes per image).

    The boxes are moved on the host (`plan_augment`); the loader plans on its gather thread instead.
    """
    _, _, height, width = images.shape
    plan = plan_augment(boxes.cpu(), classes.cpu(), counts, content_sizes, (height, width), config, generator)
    images = apply_plan(images, plan)
    kept_boxes = plan.boxes.to(boxes.device).split(plan.counts)
    kept_classes = plan.classes.to(classes.device).split(plan.counts)
    return images, list(kept_boxes), list(kept_classes)


def augment_batch(
    images: torch.Tensor,
    boxes: list[torch.Tensor],
    classes: list[torch.Tensor],
    content_sizes: torch.Tensor,
    config: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Augment a batch: images [B, 3, H, W] float in [0, 1] on any device; boxes in input pixels.

    Returns new images and per-image boxes/classes (boxes transformed, clipped, small ones dropped).
    """
    counts = [len(b) for b in boxes]
    flat_boxes = torch.cat(boxes).reshape(-1, 4) if boxes else images.new_zeros(0, 4)
    flat_classes = torch.cat(classes) if classes else torch.zeros(0, dtype=torch.long, device=images.device)
    return augment_flat(images, flat_boxes, flat_classes, counts, content_sizes, config, generator)
