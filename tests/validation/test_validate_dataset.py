"""validate_dataset on real folders: the bundled samples, coco128-kitti, and a deliberately damaged copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from peoplenet_contracts.kitti import (
    InMemoryDatasetSource,
    LocalDatasetSource,
    build_manifest,
    manifest_mismatches,
    validate_dataset,
)

if TYPE_CHECKING:
    from conftest import DamagedDataset


def split_location(problem: str) -> tuple[str, str]:
    """'labels/a.txt:3: what' -> ('labels/a.txt:3', 'what'); 'images/a.jpg: what' -> ('images/a.jpg', 'what')."""
    head, what = problem.split(": ", 1)
    return head, what


def test_samples_validate_cleanly(sample_dir: Path, sample_val_dir: Path) -> None:
    report = validate_dataset(LocalDatasetSource(sample_dir), decode=True)
    assert report.ok, report.errors
    assert report.warnings == []
    assert (report.images, report.label_files, report.negative_images) == (20, 20, 0)
    assert report.boxes_per_class["person"] == 57
    assert {"backpack", "handbag", "suitcase"} <= report.boxes_per_class.keys()
    assert report.total_bytes == sum(p.stat().st_size for p in sample_dir.glob("*/*"))
    val = validate_dataset(LocalDatasetSource(sample_val_dir), decode=True)
    assert val.ok and val.warnings == []
    assert (val.images, val.boxes_per_class["person"]) == (6, 29)


@pytest.mark.shared
def test_coco_kitti_counts_and_speed(coco_kitti: Path) -> None:
    start = time.perf_counter()
    train = validate_dataset(LocalDatasetSource(coco_kitti / "train"))
    elapsed = time.perf_counter() - start
    assert train.ok, train.errors[:5]
    assert train.warnings == []
    assert (train.images, train.label_files, train.negative_images) == (128, 128, 2)
    assert train.boxes_per_class["person"] == 254
    assert train.boxes == 929 and len(train.boxes_per_class) == 71
    assert {"backpack", "handbag", "suitcase"} <= train.boxes_per_class.keys()
    assert elapsed < 1.0, f"header-only validation of 128 images took {elapsed:.2f} s"
    val = validate_dataset(LocalDatasetSource(coco_kitti / "val"))
    assert val.ok and val.boxes_per_class["person"] == 350


def test_damaged_copy_reports_every_problem(damaged_sample: DamagedDataset) -> None:
    sample_copy, expected, classes = damaged_sample
    report = validate_dataset(LocalDatasetSource(sample_copy), known_classes=classes, decode=True)
    assert not report.ok
    found = dict(split_location(p) for p in report.errors + report.warnings)
    assert found.keys() == expected.keys(), report.errors + report.warnings
    for location, text in expected.items():
        assert text in found[location], (location, found[location])
    assert [split_location(w)[0] for w in report.warnings] == ["images/000000000322.jpg"]
    assert report.error_count == len(expected) - 1
    assert report.negative_images == 1  # the image that lost its label file

    # Without a full decode, the truncated JPEG (sound header) passes: the other problems stay.
    headers_only = validate_dataset(LocalDatasetSource(sample_copy), known_classes=classes)
    locations = {split_location(p)[0] for p in headers_only.errors}
    assert locations == set(expected) - {"images/000000000136.jpg", "images/000000000322.jpg"}


def test_unsafe_keys_duplicates_and_mismatched_formats(sample_dir: Path) -> None:
    jpeg = (sample_dir / "images" / "000000000136.jpg").read_bytes()
    label = (sample_dir / "labels" / "000000000136.txt").read_bytes()
    source = InMemoryDatasetSource(
        {
            "images/a.jpg": jpeg,
            "images/a.png": jpeg,
            "images/b.png": jpeg,  # JPEG bytes under a .png name: a warning
            "images/../../etc/c.jpg": jpeg,
            "images/notes.bmp": b"BM",
            "images/sub/d.jpg": jpeg,
            "labels/a.txt": label,
            "labels/b.txt": label,
            "labels/e.txt": b"\xff\xfe not utf-8",
            "README.md": b"ignored",
        }
    )
    report = validate_dataset(source)
    errors = {split_location(p)[0]: split_location(p)[1] for p in report.errors}
    warnings = {split_location(p)[0]: split_location(p)[1] for p in report.warnings}
    assert "escapes the dataset folder" in errors["images/../../etc/c.jpg"]
    assert "same name as images/a.jpg" in errors["images/a.png"]
    assert "not UTF-8" in errors["labels/e.txt"]
    assert "JPEG data despite its .png name" in warnings["images/b.png"]
    assert "not an image" in warnings["images/notes.bmp"]
    assert "subfolder" in warnings["images/sub/d.jpg"]
    assert "mix extensions" in warnings["images/"]


def test_no_images_and_no_objects_are_errors(tmp_path: Path, sample_dir: Path) -> None:
    (tmp_path / "images").mkdir()
    assert "no images" in validate_dataset(LocalDatasetSource(tmp_path)).errors[0]
    shutil.copy(sample_dir / "images" / "000000000136.jpg", tmp_path / "images")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "000000000136.txt").write_text("")
    report = validate_dataset(LocalDatasetSource(tmp_path))
    assert report.errors == ["labels/: no labelled objects in any label file: nothing to train on"]
    assert report.negative_images == 1


def test_manifest_from_report_and_its_check(sample_dir: Path) -> None:
    source = LocalDatasetSource(sample_dir)
    report = validate_dataset(source)
    manifest = build_manifest(source, report, dataset="coco-people", version="v1", base_model="none")
    assert len(manifest.images) == len(manifest.labels) == 20
    assert manifest.total_bytes == report.total_bytes
    assert manifest.class_counts == report.boxes_per_class
    files = source.list_files()
    assert manifest_mismatches(manifest, files) == []
    files["labels/000000000136.txt"] += 1
    del files["images/000000000149.jpg"]
    assert manifest_mismatches(manifest, files) == [
        "images/000000000149.jpg: listed in manifest.json but missing",
        f"labels/000000000136.txt: {files['labels/000000000136.txt']} bytes, "
        f"but manifest.json says {files['labels/000000000136.txt'] - 1}",
    ]


def test_manifest_refused_for_changed_dataset(sample_copy: Path) -> None:
    source = LocalDatasetSource(sample_copy)
    report = validate_dataset(source)
    (sample_copy / "labels" / "000000000136.txt").write_text("")
    with pytest.raises(ValueError, match="changed since it was validated"):
        build_manifest(source, report, dataset="d", version="v")


def test_manifest_refused_for_invalid_dataset(damaged_sample: DamagedDataset) -> None:
    source = LocalDatasetSource(damaged_sample.root)
    with pytest.raises(ValueError, match="errors: no manifest"):
        build_manifest(source, validate_dataset(source), dataset="d", version="v")


def test_header_only_validation_imports_no_pillow(sample_dir: Path) -> None:
    """The Lambda has no Pillow, torch or docker: header-only validation must not need them."""
    code = (
        "import sys; from peoplenet_contracts.kitti import LocalDatasetSource, validate_dataset;"
        f"r = validate_dataset(LocalDatasetSource({str(sample_dir)!r})); assert r.ok;"
        "heavy = [m for m in ('PIL', 'torch', 'docker', 'boto3', 'numpy') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_local_source_symlinks(sample_copy: Path, tmp_path: Path) -> None:
    images = sample_copy / "images"
    (images / "inside.jpg").symlink_to(images / "000000000136.jpg")  # stays inside: a plain file
    (images / "loop").symlink_to(images)
    (images / "broken.jpg").symlink_to(sample_copy / "nowhere.jpg")
    (images / "out.jpg").symlink_to(tmp_path)
    source = LocalDatasetSource(sample_copy)
    files = source.list_files()
    assert files["images/inside.jpg"] == (images / "000000000136.jpg").stat().st_size
    rejected = source.rejected_paths()
    assert set(rejected) == {"images/loop", "images/broken.jpg", "images/out.jpg"}
    assert "symlink loop" in rejected["images/loop"]
    assert "broken symlink" in rejected["images/broken.jpg"]
    assert "outside the dataset folder" in rejected["images/out.jpg"]
    for path in ("images/out.jpg", "images/../../outside/x.jpg", "/etc/hostname"):
        with pytest.raises(PermissionError):
            source.read_head(path, 10)
