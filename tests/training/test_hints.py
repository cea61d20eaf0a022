"""Feature hints: a pruned student's convs are pulled to its teacher's on the channels it kept."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from gpu_worker.detection.checkpoint import load_model, save_model
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.errors import UserError
from gpu_worker.pruning import PruneSettings, prune_model
from gpu_worker.pruning.iterative import compose_kept
from gpu_worker.training.hints import KEPT_CHANNELS_KEY, FeatureHints
from gpu_worker.training.train import train
from tests.training.test_distill import BOXES, CLASSES, _teacher_and_student, _trainer


def _kept(teacher: DetectNetV2) -> dict[str, list[int]]:
    result = prune_model(teacher, PruneSettings(threshold=0.5, granularity=2, min_num_filters=4))
    return {name: [int(i) for i in index] for name, index in result.kept.items()}


def _hint_distance(student: DetectNetV2, teacher: DetectNetV2, kept: dict[str, list[int]], x: torch.Tensor) -> float:
    hints = FeatureHints(student, teacher, kept)
    student.eval()
    with torch.no_grad():
        student(x), teacher(x)
        distance = float(hints.loss())
    hints.close()
    return distance


def test_hint_cost_is_zero_for_the_teacher_sliced_and_positive_after_a_cut(narrow_model: Path) -> None:
    teacher, student = _teacher_and_student(narrow_model)
    kept = _kept(teacher)
    x = torch.rand(2, 3, 160, 256)
    # The uncut teacher against itself (every channel kept) matches exactly.
    identity = {name: list(range(width)) for name, width in teacher.plan.widths.items()}
    assert _hint_distance(copy.deepcopy(teacher), teacher, identity, x) == pytest.approx(0.0, abs=1e-9)
    # conv1 reads the image, so the student's conv1 equals the teacher's kept channels; later layers do not.
    assert _hint_distance(student, teacher, kept, x) > 0.01


def test_hints_pull_the_student_towards_the_teacher_features(
    make_spec: Any, overfit_data: Path, narrow_model: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1)
    torch.manual_seed(3)
    images = torch.rand(2, 3, 160, 256)
    teacher, hinted = _teacher_and_student(narrow_model)
    kept = _kept(teacher)
    start = _hint_distance(hinted, teacher, kept, images)
    trainer = _trainer(spec, hinted, teacher, weight=1.0)
    trainer.hints = FeatureHints(hinted, teacher, kept)
    trainer.options = type(trainer.options)(distill_weight=1.0, hint_weight=1.0)
    hinted.train()
    for _ in range(15):
        trainer.train_step(images, BOXES, CLASSES, None)
    trainer.hints.close()
    assert _hint_distance(hinted, teacher, kept, images) < 0.6 * start


def test_train_reads_kept_channels_from_the_pruned_model_file(
    make_spec: Any, overfit_data: Path, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1, batch_size=2)
    teacher, student = _teacher_and_student(narrow_model)
    classes = ["person", "bag", "face"]
    teacher_file = save_model(tmp_path / "teacher.pt", teacher, classes, (160, 256))
    bare = save_model(tmp_path / "bare.pt", student, classes, (160, 256))
    with pytest.raises(UserError, match=KEPT_CHANNELS_KEY):
        train(spec, tmp_path / "bare", base_model=bare, device="cpu", teacher=teacher_file, hint_weight=1.0)
    start = save_model(tmp_path / "pruned.pt", student, classes, (160, 256), extra={KEPT_CHANNELS_KEY: _kept(teacher)})
    result = train(spec, tmp_path / "run", base_model=start, device="cpu", teacher=teacher_file, hint_weight=0.5)
    _, meta = load_model(result.model_path)
    assert meta.extra["hint_weight"] == 0.5
    # A teacher of another shape is refused, naming the layer.
    wrong = save_model(tmp_path / "wrong.pt", student, classes, (160, 256))
    with pytest.raises(UserError, match="not the model this one was pruned from"):
        train(spec, tmp_path / "wrong", base_model=start, device="cpu", teacher=wrong, hint_weight=0.5)


def test_kept_channels_compose_over_cuts() -> None:
    first = {"conv1": [0, 2, 3, 5, 7]}
    second = {"conv1": [1, 3, 4]}  # indices into the 5 channels left after the first cut
    assert compose_kept(compose_kept(None, first), second) == {"conv1": [2, 5, 7]}
