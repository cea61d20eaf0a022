"""The dataset manifest from a validated folder, and the check of a manifest against a listing."""

from __future__ import annotations

from peoplenet_contracts.kitti.layout import classify_files
from peoplenet_contracts.kitti.report import ValidationReport
from peoplenet_contracts.kitti.source import DatasetSource
from peoplenet_contracts.manifests import DatasetFile, DatasetManifest
from peoplenet_contracts.status import TrainingBackend

MANIFEST_NAME = "manifest.json"


def build_manifest(
    source: DatasetSource,
    report: ValidationReport,
    dataset: str,
    version: str,
    spec: str | None = None,
    base_model: str | None = None,
    backend: TrainingBackend | None = None,
) -> DatasetManifest:
    """The manifest of a dataset that ``report`` found valid (ValueError otherwise).

    The folder is listed again, so a file added or changed since validation is caught: its bytes
    must still add up to what was validated. Raises pydantic's ValidationError (a ValueError) for a
    bad dataset or version name.
    """
    if not report.ok:
        raise ValueError(f"{report.location} has {report.error_count} errors: no manifest for an invalid dataset")
    layout = classify_files(source.list_files())
    if (layout.image_bytes, layout.label_bytes) != (report.image_bytes, report.label_bytes):
        raise ValueError(f"{report.location} changed since it was validated: validate it again")
    return DatasetManifest(
        dataset=dataset,
        version=version,
        images=[DatasetFile(path=f.path, size=f.size) for f in sorted(layout.images.values(), key=lambda f: f.path)],
        labels=[DatasetFile(path=f.path, size=f.size) for f in sorted(layout.labels.values(), key=lambda f: f.path)],
        class_counts=dict(report.boxes_per_class),
        negative_images=report.negative_images,
        spec=spec,
        base_model=base_model,
        backend=backend,
    )


def manifest_mismatches(manifest: DatasetManifest, files: dict[str, int]) -> list[str]:
    """``file: what`` for every manifest entry missing from a listing or of another size.

    A manifest is written last, so every file it names must be there with the size it states; extra
    files are not listed (a later upload may be in progress) and are ignored."""
    problems: list[str] = []
    for entry in [*manifest.images, *manifest.labels]:
        actual = files.get(entry.path)
        if actual is None:
            problems.append(f"{entry.path}: listed in {MANIFEST_NAME} but missing")
        elif actual != entry.size:
            problems.append(f"{entry.path}: {actual} bytes, but {MANIFEST_NAME} says {entry.size}")
    return problems
