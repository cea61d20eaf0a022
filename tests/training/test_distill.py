"""Distillation while retraining a pruned model: the teacher's outputs join the ground-truth cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gpu_worker.detection.checkpoint import load_model, save_model
from gpu_worker.detection.losses import CostConfig, DetectNetLoss
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.detection.rasterizer import RasterizerConfig, rasterize
from gpu_worker.pruning import PruneSettings, prune_model
from gpu_worker.specs.info import target_class_names
from gpu_worker.training.distill import distillation_components, load_teacher
from gpu_worker.training.engine import StepOptions, Trainer, make_optimizer
from gpu_worker.training.schedule import SoftStartAnnealing
from gpu_worker.training.train import train

BOXES = [torch.tensor([[20.0, 10, 120, 150]]), torch.tensor([[140.0, 30, 230, 140]])]
CLASSES = [torch.tensor([0]), torch.tensor([0])]


def _teacher_and_student(narrow_model: Path) -> tuple[DetectNetV2, DetectNetV2]:
    _, meta = load_model(narrow_model)
    torch.manual_seed(0)
    # Without batch norm, so that train- and eval-mode outputs agree on these two random images.
    teacher = DetectNetV2(meta.plan, use_batch_norm=False)
    with torch.no_grad():  # activations that neither vanish nor explode, and filter norms spread like a
        for _, conv in teacher.conv_layers():  # trained model's: the cut removes filters that matter
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.weight.mul_(torch.empty(conv.weight.shape[0], 1, 1, 1).uniform_(0.2, 1.2))
        teacher.get_submodule("output_cov").weight.mul_(10.0)  # coverage spread over (0, 1)
    student = prune_model(teacher, PruneSettings(threshold=0.5, granularity=2, min_num_filters=4)).model
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    return teacher.eval().requires_grad_(False), student


def _trainer(spec: Any, student: DetectNetV2, teacher: DetectNetV2 | None, weight: float) -> Trainer:
    names = target_class_names(spec)
    return Trainer(
        student,
        make_optimizer(student, 2e-3, 1e-8, 0.9, 0.999),
        DetectNetLoss(CostConfig.from_spec(spec)),
        RasterizerConfig.from_spec(spec, names),
        SoftStartAnnealing.from_spec(spec),
        40,
        torch.device("cpu"),
        StepOptions(distill_weight=weight),
        teacher=teacher,
    )


def _distance(student: DetectNetV2, teacher: DetectNetV2, images: torch.Tensor) -> float:
    student.eval()
    with torch.no_grad():
        return float(distillation_components(*student(images), *teacher(images)).sum())


def test_components_vanish_only_when_the_student_matches() -> None:
    torch.manual_seed(1)
    cov, bbox = torch.rand(2, 3, 4, 5), torch.randn(2, 12, 4, 5)
    same = distillation_components(cov, bbox, cov, bbox)
    assert same.shape == (3, 2)
    torch.testing.assert_close(same, torch.zeros(3, 2), atol=1e-5, rtol=0)
    other = distillation_components(torch.rand(2, 3, 4, 5), torch.randn(2, 12, 4, 5), cov, bbox)
    assert bool((other > 0.01).all())


def test_step_loss_includes_the_weighted_distillation_cost(
    make_spec: Any, overfit_data: Path, narrow_model: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1)
    teacher, student = _teacher_and_student(narrow_model)
    images = torch.rand(2, 3, 160, 256)
    trainer = _trainer(spec, student, teacher, weight=3.0)
    student.train()
    with torch.no_grad():
        cov, bbox = student(images)
        targets = rasterize(BOXES, CLASSES, trainer.raster, tuple(cov.shape[-2:]), (160, 256))
        truth = trainer.loss_fn(cov, bbox, targets, 0.0).total
        weights = trainer.loss_fn.objective_weights(0.0) * trainer.loss_fn.class_weights[:, None]
        distill = (distillation_components(cov, bbox, *teacher(images)) * weights).sum()
    losses = trainer.train_step(images, BOXES, CLASSES, None)
    assert float(distill) > 1e-3
    torch.testing.assert_close(losses[0], truth + 3.0 * distill, rtol=1e-5, atol=1e-6)
    # Without a teacher the step's loss is the ground-truth cost alone.
    _, plain_student = _teacher_and_student(narrow_model)
    plain = _trainer(spec, plain_student, None, weight=3.0)
    plain_student.train()
    torch.testing.assert_close(plain.train_step(images, BOXES, CLASSES, None)[0], truth, rtol=1e-5, atol=1e-6)


def test_distillation_moves_the_pruned_student_towards_the_teacher(
    make_spec: Any, overfit_data: Path, narrow_model: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1)
    torch.manual_seed(2)
    images = torch.rand(2, 3, 160, 256)
    teacher, distilled = _teacher_and_student(narrow_model)
    _, plain = _teacher_and_student(narrow_model)
    start = _distance(distilled, teacher, images)
    for student, trainer in (
        (distilled, _trainer(spec, distilled, teacher, weight=5.0)),
        (plain, _trainer(spec, plain, None, weight=5.0)),
    ):
        student.train()
        for _ in range(15):
            trainer.train_step(images, BOXES, CLASSES, None)
    towards = _distance(distilled, teacher, images)
    assert towards < 0.7 * start, (start, towards)
    assert towards < 0.7 * _distance(plain, teacher, images)


def test_train_with_a_teacher_records_it(
    make_spec: Any, overfit_data: Path, narrow_model: Path, tmp_path: Path
) -> None:
    spec = make_spec(overfit_data, epochs=1, batch_size=2)
    teacher, student = _teacher_and_student(narrow_model)
    start = save_model(tmp_path / "pruned.pt", student, ["person", "bag", "face"], (160, 256))
    teacher_file = save_model(tmp_path / "teacher.pt", teacher, ["person", "bag", "face"], (160, 256))
    result = train(spec, tmp_path / "run", base_model=start, device="cpu", teacher=teacher_file, distill_weight=2.0)
    _, meta = load_model(result.model_path)
    assert meta.extra["distilled_from"] == str(teacher_file) and meta.extra["distill_weight"] == 2.0
    assert all(not p.requires_grad for p in load_teacher(teacher_file, 3, torch.device("cpu"), False).parameters())
