"""Validate a KITTI dataset folder through a DatasetSource: layout, pairing, image headers, labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from peoplenet_contracts.kitti.decode import decode_problems, ensure_decoder
from peoplenet_contracts.kitti.image_header import (
    ImageFormat,
    ImageHeaderError,
    ImageInfo,
    NeedMoreBytes,
    read_image_info,
)
from peoplenet_contracts.kitti.labels import DEFAULT_BOX_TOLERANCE, parse_label_text
from peoplenet_contracts.kitti.layout import IMAGES_DIR, LABELS_DIR, Sample, classify_files
from peoplenet_contracts.kitti.report import DEFAULT_MAX_PROBLEMS, ValidationReport
from peoplenet_contracts.kitti.source import DatasetSource

HEAD_BYTES = 64 * 1024  # holds the frame header of nearly every JPEG, EXIF included: one read
DEFAULT_WORKERS = 8  # reads overlap: a ranged GET per image on S3, a decode per image locally
_EXTENSION_FORMAT = {".jpg": ImageFormat.JPEG, ".jpeg": ImageFormat.JPEG, ".png": ImageFormat.PNG}


@dataclass
class _SampleResult:
    errors: list[tuple[str, int | None, str]] = field(default_factory=list)
    warnings: list[tuple[str, int | None, str]] = field(default_factory=list)
    boxes: Counter[str] = field(default_factory=Counter)
    has_image: bool = False
    negative: bool = False


def probe_image(source: DatasetSource, path: str, size: int) -> ImageInfo:
    """Format and size of one image from as few leading bytes as possible."""
    nbytes = min(HEAD_BYTES, size) if size > 0 else HEAD_BYTES
    while True:
        head = source.read_head(path, nbytes)
        try:
            return read_image_info(head)
        except NeedMoreBytes as more:
            if len(head) < nbytes or nbytes >= size:
                raise ImageHeaderError("is cut off before its header gives the image size") from None
            nbytes = min(max(more.needed, nbytes * 4), size)


def validate_dataset(
    source: DatasetSource,
    *,
    known_classes: Collection[str] | None = None,
    decode: bool = False,
    tolerance: float = DEFAULT_BOX_TOLERANCE,
    max_workers: int = DEFAULT_WORKERS,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> ValidationReport:
    """Check every image and label file of a KITTI folder (``images/``, ``labels/``).

    ``known_classes``: when given, any other class is an error (case-insensitive). ``decode``:
    decode every image with Pillow (reads whole files). Never raises for bad data: every problem
    lands in the report; only a source that cannot be listed at all raises ``OSError``.
    """
    if decode:
        ensure_decoder()
        if type(source).read_bytes is DatasetSource.read_bytes:
            raise ValueError(f"{type(source).__name__} cannot read whole files, so it cannot decode images")
    known = sorted({c.lower() for c in known_classes}) if known_classes is not None else None
    report = ValidationReport(location=source.location, decoded=decode, known_classes=known, max_problems=max_problems)
    files = source.list_files()
    for path, why in source.rejected_paths().items():
        report.add_error(path, None, why)
    layout = classify_files(files)
    for path, what, is_error in layout.problems:
        (report.add_error if is_error else report.add_warning)(path, None, what)
    if not layout.images:
        report.add_error(f"{IMAGES_DIR}/", None, "no images (expected images/*.jpg, *.jpeg or *.png)")
    extensions = sorted({ref.path.rsplit(".", 1)[1].lower() for ref in layout.images.values()})
    if len(extensions) > 1:
        report.add_warning(
            f"{IMAGES_DIR}/", None, f"images mix extensions ({', '.join(extensions)}): TAO reads one image_extension"
        )

    def check(sample: Sample) -> _SampleResult:
        return _check_sample(source, sample, known, decode, tolerance)

    samples = layout.samples
    if max_workers > 1 and len(samples) > 1:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kitti-validate") as pool:
            results = list(pool.map(check, samples))
    else:
        results = [check(s) for s in samples]

    boxes: Counter[str] = Counter()
    for result in results:
        for problem in result.errors:
            report.add_error(*problem)
        for problem in result.warnings:
            report.add_warning(*problem)
        boxes.update(result.boxes)
        report.images += result.has_image
        report.negative_images += result.negative
    report.labelled_images = report.images - report.negative_images
    report.label_files = len(layout.labels)
    report.boxes_per_class = dict(sorted(boxes.items(), key=lambda kv: (-kv[1], kv[0])))
    report.image_bytes = layout.image_bytes
    report.label_bytes = layout.label_bytes
    if report.ok and layout.images and not boxes:
        report.add_error(f"{LABELS_DIR}/", None, "no labelled objects in any label file: nothing to train on")
    return report


def _check_sample(
    source: DatasetSource, sample: Sample, known: list[str] | None, decode: bool, tolerance: float
) -> _SampleResult:
    result = _SampleResult(has_image=sample.image is not None)
    info: ImageInfo | None = None
    if sample.image is not None:
        path = sample.image.path
        try:
            info = probe_image(source, path, sample.image.size)
        except ImageHeaderError as exc:
            result.errors.append((path, None, str(exc)))
        except OSError as exc:
            result.errors.append((path, None, f"cannot be read: {exc}"))
        if info is not None:
            ext = "." + path.rsplit(".", 1)[1].lower()
            if _EXTENSION_FORMAT[ext] is not info.format:
                result.warnings.append((path, None, f"holds {info.format.upper()} data despite its {ext} name"))
            if info.orientation != 1:
                result.warnings.append(
                    (
                        path,
                        None,
                        f"EXIF orientation {info.orientation}: viewers rotate or mirror it, but boxes are checked "
                        f"against the stored {info.width}x{info.height} pixels; label in that frame",
                    )
                )
        if decode and info is not None:  # a bad header is reported already
            try:
                errors, warnings = decode_problems(source.read_bytes(path), info)
            except OSError as exc:
                errors, warnings = [f"cannot be read: {exc}"], []
            result.errors.extend((path, None, e) for e in errors)
            result.warnings.extend((path, None, w) for w in warnings)
    if sample.label is None:
        if sample.image is not None:
            result.negative = True
            result.warnings.append(
                (
                    sample.image.path,
                    None,
                    f"no label file {LABELS_DIR}/{sample.stem}.txt: used as a negative image (no objects)",
                )
            )
        return result

    path = sample.label.path
    if sample.image is None:
        expected = f"{IMAGES_DIR}/{sample.stem}.jpg, .jpeg or .png"
        result.errors.append((path, None, f"no image for this label file (expected {expected})"))
    try:
        text = source.read_text(path)
    except UnicodeDecodeError as exc:
        result.errors.append((path, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return result
    except OSError as exc:
        result.errors.append((path, None, f"cannot be read: {exc}"))
        return result
    size = (info.width, info.height) if info is not None else None
    parsed = parse_label_text(text, image_size=size, known_classes=known, tolerance=tolerance)
    result.errors.extend((path, line, what) for line, what in parsed.problems)
    result.boxes.update(obj.cls for obj in parsed.objects)
    result.negative = sample.image is not None and not text.strip("\ufeff \t\r\n")
    return result
