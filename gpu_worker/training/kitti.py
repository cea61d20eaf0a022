"""KITTI object labels and the folder layout of a KITTI dataset (`images/` + `labels/`, or TAO's
`image_2/` + `label_2/`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_worker.errors import UserError

IMAGE_DIR_NAMES = ("images", "image_2")
LABEL_DIR_NAMES = ("labels", "label_2")
DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png")


@dataclass(frozen=True)
class KittiObject:
    """One labelled object: class name (lower-cased, as TAO's converter does) and its box in pixels."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class KittiSample:
    """An image and its label file."""

    image: Path
    label: Path

    @property
    def stem(self) -> str:
        return self.image.stem


def read_kitti_labels(path: Path) -> list[KittiObject]:
    """Parse a KITTI label file: `type truncated occluded alpha x1 y1 x2 y2 ...` one object a line."""
    objects: list[KittiObject] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read label file ({exc})") from exc
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 8:
            raise UserError(
                f"{path}:{line_no}: a KITTI label line needs at least 8 fields "
                f"(type truncated occluded alpha x1 y1 x2 y2), got {len(fields)}"
            )
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[4:8])
        except ValueError as exc:
            raise UserError(f"{path}:{line_no}: box corners x1 y1 x2 y2 must be numbers: {fields[4:8]}") from exc
        objects.append(KittiObject(fields[0].lower(), x1, y1, x2, y2))
    return objects


def kitti_dirs(root: Path) -> tuple[Path, Path]:
    """(images dir, labels dir) of a KITTI dataset root; UserError when either is missing."""
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist")
    images = next((root / n for n in IMAGE_DIR_NAMES if (root / n).is_dir()), None)
    labels = next((root / n for n in LABEL_DIR_NAMES if (root / n).is_dir()), None)
    if images is None or labels is None:
        raise UserError(
            f"{root}: expected a KITTI layout with one of {'/'.join(IMAGE_DIR_NAMES)} and one of "
            f"{'/'.join(LABEL_DIR_NAMES)} folders inside"
        )
    return images, labels


def list_kitti_samples(root: Path, image_extension: str = "") -> list[KittiSample]:
    """Every image of a KITTI dataset with its label file, sorted by file name.

    `image_extension` is the spec's extension (with or without a dot); empty accepts jpg, jpeg and png.
    An image without a label file is an error (an empty label file marks an image with no objects).
    """
    images_dir, labels_dir = kitti_dirs(root)
    wanted = {image_extension.lower().lstrip(".")} if image_extension else set(DEFAULT_EXTENSIONS)
    if wanted & {"jpg", "jpeg"}:
        wanted |= {"jpg", "jpeg"}
    images = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in wanted)
    if not images:
        raise UserError(f"{images_dir}: no images with extension {'/'.join(sorted(wanted))}")
    samples = [KittiSample(image, labels_dir / f"{image.stem}.txt") for image in images]
    missing = [s.label for s in samples if not s.label.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} image(s) in {images_dir} have no label file, e.g. {missing[0]}; "
            "add an (empty, for no objects) label file per image"
        )
    return samples
