"""Inference on image files: annotated copies and KITTI prediction files, like TAO's `inference` task.

`OUT/images_annotated/<name>` gets the image with its boxes drawn; `OUT/labels/<stem>.txt` one KITTI
line per detection in original-image pixels, with the confidence as the 16th field:
`person 0.00 0 0.00 x1 y1 x2 y2 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.8731`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpu_worker.detection.postprocess import Detection, PostProcessor
from gpu_worker.errors import UserError

if TYPE_CHECKING:
    from PIL import Image

    from gpu_worker.training.predictors import Predictor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ANNOTATED_DIR = "images_annotated"
LABELS_DIR = "labels"
# Distinct, readable colours per class channel (person green, bag orange, face blue, ...).
PALETTE = ((0, 200, 0), (255, 140, 0), (30, 144, 255), (220, 20, 60), (148, 0, 211), (255, 215, 0))


@dataclass(frozen=True)
class ImageResult:
    image: Path
    detections: list[Detection]  # original-image pixels
    annotated: Path
    labels: Path


def list_images(path: Path) -> list[Path]:
    """One image file, or every image directly in a folder (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} does not exist; give an image file or a folder of images")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def kitti_prediction_line(detection: Detection) -> str:
    d = detection
    return (
        f"{d.class_name} 0.00 0 0.00 {d.x1:.2f} {d.y1:.2f} {d.x2:.2f} {d.y2:.2f} "
        f"0.00 0.00 0.00 0.00 0.00 0.00 0.00 {d.confidence:.4f}"
    )


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    from PIL import ImageDraw

    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for det in sorted(detections, key=lambda d: d.confidence):  # most confident drawn last, on top
        colour = PALETTE[det.class_index % len(PALETTE)]
        draw.rectangle(det.box, outline=colour, width=width)
        text = f"{det.class_name} {det.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((det.x1, det.y1), text)
        y = max(0.0, det.y1 - (bottom - top) - 2)
        draw.rectangle((det.x1, y, det.x1 + (right - left) + 4, y + (bottom - top) + 2), fill=colour)
        draw.text((det.x1 + 2, y), text, fill=(0, 0, 0))
    return canvas


def _to_original(detections: list[Detection], scale: float, size: tuple[int, int]) -> list[Detection]:
    width, height = size
    out = []
    for det in detections:
        d = det.scaled(1.0 / scale)
        x1, x2 = (min(max(v, 0.0), width) for v in (d.x1, d.x2))
        y1, y2 = (min(max(v, 0.0), height) for v in (d.y1, d.y2))
        if x2 > x1 and y2 > y1:  # a sliver at the content edge can vanish when rounded back
            out.append(Detection(d.class_index, d.class_name, x1, y1, x2, y2, d.confidence))
    return out


def infer_images(
    predictor: Predictor,
    post: PostProcessor,
    images: Sequence[Path],
    out_dir: Path,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[ImageResult]:
    """Detect objects in every image; write annotated images and KITTI prediction files under `out_dir`."""
    from PIL import Image

    from gpu_worker.training.letterbox import letterbox_geometry, letterbox_pil

    height, width = predictor.input_hw
    (out_dir / ANNOTATED_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / LABELS_DIR).mkdir(parents=True, exist_ok=True)
    results: list[ImageResult] = []
    for start in range(0, len(images), batch_size):
        paths = images[start : start + batch_size]
        originals, inputs, scales, contents = [], [], [], []
        for path in paths:
            try:
                with Image.open(path) as opened:
                    original = opened.convert("RGB")
            except (OSError, ValueError) as exc:
                raise UserError(f"{path}: cannot decode image ({exc})") from exc
            letterboxed, scale = letterbox_pil(original, width, height)
            geometry = letterbox_geometry(original.width, original.height, width, height)
            contents.append((geometry.new_h, geometry.new_w))
            originals.append(original)
            inputs.append(letterboxed)
            scales.append(scale)
        cov, bbox = predictor.predict(np.stack(inputs))
        for path, original, scale, dets in zip(
            paths, originals, scales, post.batch(cov, bbox, sizes=contents), strict=True
        ):
            detections = _to_original(dets, scale, original.size)
            annotated = out_dir / ANNOTATED_DIR / path.name
            draw_detections(original, detections).save(annotated)
            labels = out_dir / LABELS_DIR / f"{path.stem}.txt"
            labels.write_text("".join(kitti_prediction_line(d) + "\n" for d in detections))
            results.append(ImageResult(path, detections, annotated, labels))
        if progress is not None:
            progress(len(results), len(images))
    return results
