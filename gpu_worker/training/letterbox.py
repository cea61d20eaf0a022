"""Letterbox resize: scale to fit keeping the aspect ratio, pad right and bottom with zeros.

This matches DeepStream nvinfer with `maintain-aspect-ratio=1` and `symmetric-padding=0` (the
default): the image is scaled by one factor `scale = min(out_w / w, out_h / h)` and placed in the
top-left corner, so a point (x, y) of the original image lands at (x * scale, y * scale) of the
network input and a prediction maps back by dividing by `scale`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gpu_worker.errors import UserError


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where an image of `src_w` x `src_h` lands in an `out_w` x `out_h` canvas."""

    src_w: int
    src_h: int
    out_w: int
    out_h: int
    scale: float  # original pixels -> network pixels
    new_w: int  # width of the resized image inside the canvas
    new_h: int


def letterbox_geometry(src_w: int, src_h: int, out_w: int, out_h: int) -> LetterboxGeometry:
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"image has no pixels: {src_w}x{src_h}")
    scale = min(out_w / src_w, out_h / src_h)
    # Rounding keeps the resized image within 0.5 px of src * scale on each axis.
    new_w = min(out_w, max(1, round(src_w * scale)))
    new_h = min(out_h, max(1, round(src_h * scale)))
    return LetterboxGeometry(src_w, src_h, out_w, out_h, scale, new_w, new_h)


def letterbox_pil(image: Image.Image, out_w: int, out_h: int) -> tuple[np.ndarray, float]:
    """Letterbox a PIL image into a uint8 [out_h, out_w, 3] RGB array; returns (array, scale)."""
    geometry = letterbox_geometry(image.width, image.height, out_w, out_h)
    return _place(image, geometry), geometry.scale


def _place(image: Image.Image, geometry: LetterboxGeometry) -> np.ndarray:
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (geometry.new_w, geometry.new_h):
        image = image.resize((geometry.new_w, geometry.new_h), Image.Resampling.BILINEAR)
    canvas = np.zeros((geometry.out_h, geometry.out_w, 3), dtype=np.uint8)
    canvas[: geometry.new_h, : geometry.new_w] = np.asarray(image, dtype=np.uint8)
    return canvas


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    try:
        with Image.open(path) as image:
            return image.width, image.height
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read image ({exc}); remove or replace the file") from exc


def load_image_letterboxed(path: str | Path, out_w: int, out_h: int) -> tuple[np.ndarray, float]:
    """Decode an image file and letterbox it: (uint8 [out_h, out_w, 3] RGB array, scale).

    `scale` maps original pixel coordinates to network-input coordinates (multiply), and back
    (divide). Raises UserError naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            geometry = letterbox_geometry(image.width, image.height, out_w, out_h)
            # JPEG draft mode decodes at 1/2, 1/4 or 1/8 size directly when that is still at least the
            # target size: several times faster for big photos; the resize below does the rest.
            image.draft("RGB", (geometry.new_w, geometry.new_h))
            canvas = _place(image, geometry)
    except (OSError, ValueError) as exc:  # PIL raises OSError (UnidentifiedImageError) for bad files
        raise UserError(f"{path}: cannot decode image ({exc}); remove or replace the file") from exc
    return canvas, geometry.scale
