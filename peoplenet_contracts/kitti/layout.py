"""Which files of a dataset folder are images and labels, and how they pair up (by file stem)."""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGES_DIR = "images"
LABELS_DIR = "labels"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LABEL_EXTENSION = ".txt"


@dataclass(frozen=True)
class DatasetFileRef:
    path: str
    size: int


@dataclass(frozen=True)
class Sample:
    """One stem: its image, its label file, or both."""

    stem: str
    image: DatasetFileRef | None
    label: DatasetFileRef | None


@dataclass
class DatasetLayout:
    """Images and labels by stem, plus problems of the file layout as (path, what, is_error)."""

    images: dict[str, DatasetFileRef] = field(default_factory=dict)
    labels: dict[str, DatasetFileRef] = field(default_factory=dict)
    problems: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        stems = sorted(self.images.keys() | self.labels.keys())
        return [Sample(stem, self.images.get(stem), self.labels.get(stem)) for stem in stems]

    @property
    def image_bytes(self) -> int:
        return sum(f.size for f in self.images.values())

    @property
    def label_bytes(self) -> int:
        return sum(f.size for f in self.labels.values())


def unsafe_path_reason(path: str) -> str | None:
    """Why a listed path could not be written safely under the dataset folder, or None."""
    if path.startswith("/") or "\\" in path:
        return "path is absolute or uses '\\': it must be relative and '/'-separated"
    if any(part in {"", ".", ".."} for part in path.split("/")):
        return "path escapes the dataset folder ('..', '.' or an empty part)"
    if any(not ch.isprintable() for ch in path):
        return "path holds control characters"
    return None


def classify_files(files: dict[str, int]) -> DatasetLayout:
    """Sort a listing into images/ and labels/ by stem; other top-level files are not dataset content."""
    layout = DatasetLayout()
    for path, size in sorted(files.items()):
        if reason := unsafe_path_reason(path):
            layout.problems.append((path, reason, True))
            continue
        folder, _, rest = path.partition("/")
        if folder not in (IMAGES_DIR, LABELS_DIR) or not rest:
            continue
        if "/" in rest:
            layout.problems.append((path, f"ignored: files must sit directly in {folder}/, not in a subfolder", False))
            continue
        stem, dot, ext = rest.rpartition(".")
        ext = dot + ext.lower()
        if folder == IMAGES_DIR:
            _add(layout.images, layout, stem, ext, path, size, IMAGE_EXTENSIONS, "an image")
        else:
            _add(layout.labels, layout, stem, ext, path, size, (LABEL_EXTENSION,), "a label file")
    return layout


def _add(
    target: dict[str, DatasetFileRef],
    layout: DatasetLayout,
    stem: str,
    ext: str,
    path: str,
    size: int,
    extensions: tuple[str, ...],
    what: str,
) -> None:
    if not stem or ext not in extensions:
        layout.problems.append((path, f"ignored: not {what} (expected {'/'.join(extensions)})", False))
        return
    if (other := target.get(stem)) is not None:
        layout.problems.append((path, f"same name as {other.path}: cannot tell which one to pair", True))
        return
    target[stem] = DatasetFileRef(path, size)
