"""DeepStream labels file: one class name a line, in output-channel order.

Names are written exactly as the spec's `cost_function_config.target_classes` spell them (PeopleNet's
NGC file capitalises them, `Person`/`Bag`/`Face`; nvinfer only counts lines and shows the text), so
reading the file back gives the training classes unchanged and `num-detected-classes` = line count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gpu_worker.errors import UserError

LABELS_FILE = "labels.txt"


def labels_path_for(model_path: Path) -> Path:
    """Where the labels file of an exported model lives: `labels.txt` in the same folder."""
    return model_path.with_name(LABELS_FILE)


def write_labels(path: Path, classes: Sequence[str]) -> Path:
    bad = [name for name in classes if not name.strip() or "\n" in name or "\r" in name or name != name.strip()]
    if not classes or bad:
        raise ValueError(f"class names must be non-empty single-line text without surrounding spaces: {list(classes)}")
    if len({name.lower() for name in classes}) != len(classes):
        raise ValueError(f"class names repeat (case-insensitively): {list(classes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in classes))
    return path


def read_labels(path: Path) -> tuple[str, ...]:
    """Class names of a labels file (blank lines ignored); UserError when missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read labels file {path} ({exc})") from exc
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise UserError(f"labels file {path} is empty; it needs one class name a line, in channel order")
    return names
