"""KITTI label-line parsing: examples and properties (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from peoplenet_contracts.kitti import FIELD_NAMES, KITTI_FIELDS, parse_label_line, parse_label_text

LINE = "person 0.00 0 0.00 10.5 20.0 110.0 220.0 0.00 0.00 0.00 0.00 0.00 0.00 0.00"

class_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,15}", fullmatch=True)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def valid_lines(draw: st.DrawFn) -> tuple[str, str, list[float]]:
    cls = draw(class_names)
    x1 = draw(st.floats(min_value=0, max_value=5000, allow_nan=False))
    y1 = draw(st.floats(min_value=0, max_value=5000, allow_nan=False))
    x2 = x1 + draw(st.floats(min_value=0.01, max_value=5000, allow_nan=False))
    y2 = y1 + draw(st.floats(min_value=0.01, max_value=5000, allow_nan=False))
    head = draw(st.lists(finite, min_size=3, max_size=3))
    tail = draw(st.lists(finite, min_size=7, max_size=7))
    score = draw(st.lists(finite, max_size=1))  # an optional 16th field
    values = [*head, x1, y1, x2, y2, *tail, *score]
    return f"{cls} " + " ".join(repr(v) for v in values), cls, values


def _not_a_number(token: str) -> bool:
    if not token or any(ch.isspace() for ch in token):
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


bad_tokens = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity"]),
    st.text(min_size=1, max_size=8).filter(_not_a_number),
)


def test_example_line() -> None:
    obj, problems = parse_label_line(LINE)
    assert problems == []
    assert obj is not None
    assert obj.cls == "person"
    assert obj.box == (10.5, 20.0, 110.0, 220.0)
    assert obj.score is None


@given(valid_lines())
def test_valid_lines_parse(case: tuple[str, str, list[float]]) -> None:
    line, cls, values = case
    obj, problems = parse_label_line(line)
    assert problems == []
    assert obj is not None
    assert obj.cls == cls
    assert list(obj.values) == values


@given(valid_lines(), st.integers(min_value=1, max_value=KITTI_FIELDS - 1), bad_tokens)
def test_any_corrupted_field_is_reported(case: tuple[str, str, list[float]], index: int, token: str) -> None:
    tokens = case[0].split()
    tokens[index] = token
    obj, problems = parse_label_line(" ".join(tokens))
    assert obj is None
    assert problems, tokens
    assert any(f"field {index + 1} ({FIELD_NAMES[index]})" in p and repr(token) in p for p in problems), problems


@given(valid_lines(), st.data())
def test_wrong_field_count_is_reported(case: tuple[str, str, list[float]], data: st.DataObject) -> None:
    tokens = case[0].split()[:KITTI_FIELDS]
    count = data.draw(st.sampled_from([1, 5, KITTI_FIELDS - 1, KITTI_FIELDS + 2, 20]))
    tokens = (tokens * 2)[:count]
    obj, problems = parse_label_line(" ".join(tokens))
    assert obj is None
    assert problems == [problems[0]] and f"found {count}" in problems[0]


@given(valid_lines())
def test_swapped_corners_are_reported(case: tuple[str, str, list[float]]) -> None:
    tokens = case[0].split()
    tokens[5], tokens[7] = tokens[7], tokens[5]  # y1 <-> y2
    obj, problems = parse_label_line(" ".join(tokens))
    assert obj is None
    assert any(p.startswith("y2 (") and "greater than y1" in p for p in problems)


def test_space_in_class_name_gets_a_hint() -> None:
    rest = LINE.split(" ", 1)[1]
    _, problems = parse_label_line("traffic light " + rest)  # 16 fields: 'light' taken for field 2
    assert problems == ["field 2 (truncated) is 'light', not a number; class names cannot contain spaces (use '_')"]
    _, problems = parse_label_line("big red traffic light " + rest)
    assert "found 18" in problems[0] and "cannot contain spaces" in problems[0]


def test_label_text_lines_bom_crlf_blank_and_box_bounds() -> None:
    text = "\ufeff" + LINE + "\r\n\r\n" + LINE.replace("110.0", "700.0") + "\r\n" + "bag 0 0 0 1 2 3\n"
    result = parse_label_text(text, image_size=(640, 480), known_classes={"Person"})
    assert [o.cls for o in result.objects] == ["person"]
    assert [n for n, _ in result.problems] == [3, 4]
    assert "outside the 640x480 image" in result.problems[0][1]
    assert "found 7" in result.problems[1][1]


def test_tolerance_and_unknown_class() -> None:
    edge = LINE.replace("110.0", "641.5")
    assert parse_label_text(edge, image_size=(640, 480)).problems == []
    assert parse_label_text(edge, image_size=(640, 480), tolerance=1.0).problems
    unknown = parse_label_text(LINE.replace("person", "unicorn"), known_classes={"person", "bag"})
    assert unknown.problems == [(1, "class 'unicorn' is not one of the known classes (bag, person)")]


def test_empty_file_has_no_objects() -> None:
    for text in ("", "\n", "  \r\n"):
        result = parse_label_text(text)
        assert result.objects == [] and result.problems == []


def test_values_are_finite() -> None:
    obj, _ = parse_label_line(LINE + " 0.87")
    assert obj is not None and obj.score == 0.87
    assert all(math.isfinite(v) for v in obj.values)
