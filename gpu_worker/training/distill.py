"""Knowledge distillation for retraining pruned models: the unpruned model teaches the pruned one.

A pruned PeopleNet loses coverage on every cut, and a small dataset's boxes alone cannot retrain it
back. The teacher (the model before pruning, frozen, eval mode) runs on the same augmented batch and
gives a dense target on every cell: the student's coverage is pulled towards the teacher's sigmoid
coverage (binary KL, i.e. BCE against the soft target minus its entropy: the logit gradient is
p_student - p_teacher, which does not vanish on a collapsed, saturated coverage map as L2 would), and its
bbox channels towards the teacher's (L1 weighted by the teacher's coverage, as the ground-truth bbox
cost is weighted by the target coverage). Both are combined with the ground-truth cost's objective and
class weights and added to it times `distill_weight`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gpu_worker.detection.losses import EPSILON
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.errors import UserError

DEFAULT_DISTILL_WEIGHT = 1.0


def distillation_components(cov: Tensor, bbox: Tensor, teacher_cov: Tensor, teacher_bbox: Tensor) -> Tensor:
    """[C, 2] per class (cov, bbox) mean distillation costs of the student's outputs against the teacher's."""
    p, t = cov.float(), teacher_cov.float()
    kl = t * torch.log((t + EPSILON) / (p + EPSILON)) + (1.0 - t) * torch.log((1.0 - t + EPSILON) / (1.0 - p + EPSILON))
    b, channels, h, w = bbox.shape
    diff = (bbox.float() - teacher_bbox.float()).abs().view(b, channels // 4, 4, h, w)
    box = diff * t[:, :, None]
    return torch.stack([kl.mean(dim=(0, 2, 3)), box.mean(dim=(0, 2, 3, 4))], dim=1)


def load_teacher(path: Path, num_classes: int, device: torch.device, channels_last: bool) -> DetectNetV2:
    """The frozen teacher model on `device`, in eval mode."""
    from gpu_worker.detection.checkpoint import load_model

    if not Path(path).is_file():
        raise UserError(f"distillation teacher {path} does not exist; pass the unpruned model file")
    model, meta = load_model(Path(path))
    if len(meta.classes) != num_classes:
        raise UserError(
            f"distillation teacher {path} has {len(meta.classes)} classes {list(meta.classes)}, the spec has "
            f"{num_classes}; teacher and student must predict the same classes"
        )
    model.to(device).eval().requires_grad_(False)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
