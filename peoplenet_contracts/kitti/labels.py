"""KITTI label lines: parse and check one object per line.

A line has 15 whitespace-separated fields (16 with a trailing detection score, which is tolerated):
``class truncated occluded alpha x1 y1 x2 y2 height width length x y z rotation_y [score]``.
DetectNet_v2 uses the class and the 2D box (pixels, x1 < x2, y1 < y2); the rest must still be
finite numbers because TAO's converter parses them. An empty label file is an image with no objects.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

FIELD_NAMES = (
    "class",
    "truncated",
    "occluded",
    "alpha",
    "x1",
    "y1",
    "x2",
    "y2",
    "height",
    "width",
    "length",
    "x",
    "y",
    "z",
    "rotation_y",
    "score",
)
KITTI_FIELDS = 15
DEFAULT_BOX_TOLERANCE = 2.0  # pixels a box may stick out of the image (rounding in converters)
_CLASSES_SHOWN = 12  # in an unknown-class message
_SPACE_HINT = "; class names cannot contain spaces (use '_')"


@dataclass(frozen=True)
class KittiObject:
    """One label line. ``values`` are fields 2-15 (and the score) as floats."""

    cls: str
    values: tuple[float, ...]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2 in pixels."""
        return self.values[3], self.values[4], self.values[5], self.values[6]

    @property
    def score(self) -> float | None:
        return self.values[14] if len(self.values) > 14 else None


@dataclass
class LabelFileResult:
    """Objects of one label file and its problems as (line number, what is wrong)."""

    objects: list[KittiObject] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


def parse_label_line(line: str) -> tuple[KittiObject | None, list[str]]:
    """One object, or None with every problem found in the line's fields."""
    tokens = line.split()
    if len(tokens) not in (KITTI_FIELDS, KITTI_FIELDS + 1):
        message = f"expected {KITTI_FIELDS} fields ({' '.join(FIELD_NAMES[:KITTI_FIELDS])}), found {len(tokens)}"
        if len(tokens) > KITTI_FIELDS and not _is_number(tokens[1]):
            message += _SPACE_HINT
        return None, [message]
    cls = tokens[0]
    problems = [] if cls.isprintable() else [f"class {cls!r} holds control characters"]
    values: list[float] = []
    for index, token in enumerate(tokens[1:], start=1):
        name = FIELD_NAMES[index]
        try:
            value = float(token)
        except ValueError:
            hint = _SPACE_HINT if index == 1 and len(tokens) > KITTI_FIELDS else ""
            problems.append(f"field {index + 1} ({name}) is {token!r}, not a number{hint}")
            continue
        if not math.isfinite(value):
            problems.append(f"field {index + 1} ({name}) is {token!r}, not a finite number")
            continue
        values.append(value)
    if problems:
        return None, problems
    obj = KittiObject(cls, tuple(values))
    x1, y1, x2, y2 = obj.box
    if not x1 < x2:
        problems.append(f"x2 ({x2:g}) must be greater than x1 ({x1:g})")
    if not y1 < y2:
        problems.append(f"y2 ({y2:g}) must be greater than y1 ({y1:g})")
    return (None, problems) if problems else (obj, [])


def box_problem(obj: KittiObject, width: int, height: int, tolerance: float = DEFAULT_BOX_TOLERANCE) -> str | None:
    """Why the box does not fit a width x height image (tolerance in pixels), or None."""
    x1, y1, x2, y2 = obj.box
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        return (
            f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {width}x{height} image (tolerance {tolerance:g} px)"
        )
    return None


def parse_label_text(
    text: str,
    image_size: tuple[int, int] | None = None,
    known_classes: Collection[str] | None = None,
    tolerance: float = DEFAULT_BOX_TOLERANCE,
) -> LabelFileResult:
    """Every line of a label file. ``image_size`` (width, height) enables the box-inside check;
    ``known_classes`` (compared case-insensitively) makes any other class an error."""
    known = {c.lower() for c in known_classes} if known_classes is not None else None
    shown = sorted(known or ())[:_CLASSES_SHOWN]
    known_text = ", ".join(shown) + (
        f", ... {len(known) - len(shown)} more" if known and len(known) > len(shown) else ""
    )
    result = LabelFileResult()
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        obj, problems = parse_label_line(line)
        result.problems.extend((number, p) for p in problems)
        if obj is None:
            continue
        bad = False
        if image_size is not None and (problem := box_problem(obj, *image_size, tolerance=tolerance)):
            result.problems.append((number, problem))
            bad = True
        if known is not None and obj.cls.lower() not in known:
            result.problems.append((number, f"class {obj.cls!r} is not one of the known classes ({known_text})"))
            bad = True
        if not bad:
            result.objects.append(obj)
    return result


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
