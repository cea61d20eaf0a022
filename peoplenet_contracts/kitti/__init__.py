"""KITTI dataset validation shared by the Lambda, the CLI and the worker: stdlib + pydantic only.

No torch, docker or Pillow at import time and no image download: image sizes come from the first
bytes of each file. Pillow is imported only for the optional full decode (``decode=True``).

Usage::

    source = LocalDatasetSource("datasets/shop-a")
    report = validate_dataset(source, known_classes={"person", "bag"})
    if report.ok:
        manifest = build_manifest(source, report, dataset="shop-a", version="v3")

Writing another source (the S3 one for the Lambda): subclass ``DatasetSource`` and implement

- ``location`` -> ``"s3://bucket/datasets/shop-a/v3/"`` (used in messages only);
- ``list_files()`` -> ``{relative key: size}`` for every object under the prefix (ListObjectsV2,
  paginated; strip the prefix, keep keys verbatim: the validator rejects ``..`` and the like);
- ``read_text(path)`` -> GetObject body decoded as UTF-8 (raise ``UnicodeDecodeError`` otherwise);
- ``read_head(path, nbytes)`` -> GetObject with ``Range="bytes=0-{nbytes - 1}"``; the validator asks
  for 64 KiB first and more only when a JPEG's EXIF/ICC segments push the frame header further;
- ``read_bytes(path)`` only if that source must support ``decode=True``.

Raise ``FileNotFoundError``/``PermissionError``/``OSError`` (translate ``ClientError`` at the edge).
The validator calls the read methods from several threads at once (``max_workers``), so a source
must be thread-safe (boto3 clients are; sessions are not).
"""

from __future__ import annotations

from peoplenet_contracts.kitti.image_header import (
    ImageFormat,
    ImageHeaderError,
    ImageInfo,
    NeedMoreBytes,
    read_image_info,
)
from peoplenet_contracts.kitti.labels import (
    DEFAULT_BOX_TOLERANCE,
    FIELD_NAMES,
    KITTI_FIELDS,
    KittiObject,
    LabelFileResult,
    parse_label_line,
    parse_label_text,
)
from peoplenet_contracts.kitti.layout import IMAGE_EXTENSIONS, DatasetLayout, classify_files, unsafe_path_reason
from peoplenet_contracts.kitti.manifest import MANIFEST_NAME, build_manifest, manifest_mismatches
from peoplenet_contracts.kitti.report import ValidationReport, format_problem
from peoplenet_contracts.kitti.source import DatasetSource, InMemoryDatasetSource, LocalDatasetSource
from peoplenet_contracts.kitti.validate import probe_image, validate_dataset

__all__ = [
    "DEFAULT_BOX_TOLERANCE",
    "FIELD_NAMES",
    "IMAGE_EXTENSIONS",
    "KITTI_FIELDS",
    "MANIFEST_NAME",
    "DatasetLayout",
    "DatasetSource",
    "ImageFormat",
    "ImageHeaderError",
    "ImageInfo",
    "InMemoryDatasetSource",
    "KittiObject",
    "LabelFileResult",
    "LocalDatasetSource",
    "NeedMoreBytes",
    "ValidationReport",
    "build_manifest",
    "classify_files",
    "format_problem",
    "manifest_mismatches",
    "parse_label_line",
    "parse_label_text",
    "probe_image",
    "read_image_info",
    "unsafe_path_reason",
    "validate_dataset",
]
