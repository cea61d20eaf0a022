"""Fixtures for dataset validation: the bundled samples and a writable copy of one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "coco-people"
SAMPLE_VAL = REPO_ROOT / "samples" / "coco-people-val"


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of samples/coco-people (images, labels) under tmp_path/dataset."""
    root = tmp_path / "dataset"
    for sub in ("images", "labels"):
        shutil.copytree(SAMPLE / sub, root / sub)
    return root


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """samples/coco-people: 20 real COCO photos with people, shipped with the project."""
    return SAMPLE


@pytest.fixture(scope="session")
def sample_val_dir() -> Path:
    """samples/coco-people-val: 6 held-out COCO val2017 photos, shipped with the project."""
    return SAMPLE_VAL


class DamagedDataset(NamedTuple):
    root: Path
    expected: dict[str, str]  # 'file:line' (or 'file') exactly as reported -> text the problem holds
    known_classes: set[str]  # every class of the sample: only 'unicorn' is unknown


@pytest.fixture
def damaged_sample(sample_copy: Path) -> DamagedDataset:
    """A copy of the sample broken in every way the validator must catch (one is only a warning)."""
    expected = damage(sample_copy)
    return DamagedDataset(sample_copy, expected, sample_classes(sample_copy) - {"unicorn"})


def _line(path: Path, number: int) -> list[str]:
    return path.read_text().splitlines()[number - 1].split()


def _set_line(path: Path, number: int, tokens: list[str]) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")


def damage(root: Path) -> dict[str, str]:
    """Break a copy of the sample in every way the validator must catch; return location -> key text.

    A location is ``file:line`` (``file`` for a whole-file problem) exactly as the report prints it."""
    images, labels = root / "images", root / "labels"
    expected: dict[str, str] = {}

    truncated = images / "000000000136.jpg"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    expected["images/000000000136.jpg"] = "cannot be decoded"  # only with decode

    tokens = _line(labels / "000000000149.txt", 2)
    _set_line(labels / "000000000149.txt", 2, tokens[:14])
    expected["labels/000000000149.txt:2"] = "expected 15 fields"

    tokens = _line(labels / "000000000241.txt", 1)
    tokens[4], tokens[6] = tokens[6], tokens[4]
    _set_line(labels / "000000000241.txt", 1, tokens)
    expected["labels/000000000241.txt:1"] = "must be greater than x1"

    tokens = _line(labels / "000000000260.txt", 3)  # 000000000260.jpg is 500x333
    tokens[6] = "560.0"
    _set_line(labels / "000000000260.txt", 3, tokens)
    expected["labels/000000000260.txt:3"] = "lies outside the 500x333 image"

    shutil.copy(labels / "000000000294.txt", labels / "orphan.txt")
    expected["labels/orphan.txt"] = "no image for this label file"

    (labels / "000000000322.txt").unlink()
    expected["images/000000000322.jpg"] = "used as a negative image"  # a warning

    tokens = _line(labels / "000000000326.txt", 1)
    tokens[5] = "abc"
    _set_line(labels / "000000000326.txt", 1, tokens)
    expected["labels/000000000326.txt:1"] = "field 6 (y1) is 'abc', not a number"

    tokens = _line(labels / "000000000338.txt", 2)
    tokens[0] = "unicorn"
    _set_line(labels / "000000000338.txt", 2, tokens)
    expected["labels/000000000338.txt:2"] = "class 'unicorn' is not one of the known classes"

    outside = root.parent / "outside"
    outside.mkdir()
    shutil.copy(images / "000000000370.jpg", outside / "secret.jpg")
    (images / "zz_escape.jpg").symlink_to(outside / "secret.jpg")
    expected["images/zz_escape.jpg"] = "leads outside the dataset folder"
    return expected


def sample_classes(root: Path) -> set[str]:
    return {line.split()[0] for path in root.glob("labels/*.txt") for line in path.read_text().splitlines()}
