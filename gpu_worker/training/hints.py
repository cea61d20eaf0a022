"""Feature hints: every conv unit of the student matches the teacher's on the channels the student kept.

Output distillation (training/distill.py) gives one dense target per output cell; a pruned PeopleNet has lost
most of its coverage signal after a cut and 128 images cannot rebuild the features that fed it. The pruned
model is a channel subset of its teacher (`kept_channels` in its model file maps each layer to the teacher's
channel indices), so each of its convs has an exact counterpart: the hint cost pulls the student's conv
unit outputs (after batch norm, before the activation: the model's `taps`) to the teacher's on the same
channels, normalised per channel by the teacher's variance so wide and narrow layers count alike (FitNets,
Romero et al. 2015, without the regressor that a subset does not need). The same cost with every channel
kept pulls a quantisation-aware (BN-folded) student to its float teacher layer by layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from gpu_worker.detection.channel_plan import HEAD_LAYERS
from gpu_worker.detection.model import DetectNetV2
from gpu_worker.errors import UserError

KEPT_CHANNELS_KEY = "kept_channels"  # model-file metadata: layer -> teacher channel indices
VARIANCE_FLOOR = 1e-4


class FeatureHints:
    """Captures both models' conv unit outputs during their forward passes (`taps`) and scores them."""

    def __init__(self, student: DetectNetV2, teacher: DetectNetV2, kept: Mapping[str, Sequence[int]]) -> None:
        self.layers = [name for name, _ in student.conv_layers() if name not in HEAD_LAYERS]
        missing = [name for name in self.layers if name not in kept]
        if missing:
            raise UserError(f"feature hints: the pruned model's kept channels do not name {missing[:3]}")
        teacher_widths = dict(teacher.plan.widths)
        device = next(student.parameters()).device
        self.index: dict[str, Tensor] = {}
        for name in self.layers:
            index = torch.as_tensor(list(kept[name]), dtype=torch.long, device=device)
            if len(index) != student.plan.widths[name] or int(index.max()) >= teacher_widths[name]:
                raise UserError(
                    f"feature hints: layer {name} keeps {len(index)} of the teacher's {teacher_widths[name]} "
                    f"channels but has {student.plan.widths[name]}; the teacher is not the model this one was "
                    "pruned from"
                )
            self.index[name] = index
        self._student: dict[str, Tensor] = {}
        self._teacher: dict[str, Tensor] = {}
        self._models = (student, teacher)
        student.taps, teacher.taps = self._student, self._teacher

    def loss(self) -> Tensor:
        """Mean over layers of the variance-normalised squared error of the last forward passes."""
        costs = []
        for name in self.layers:
            student = self._student[name].float()
            teacher = self._teacher[name].float().index_select(1, self.index[name])
            variance = teacher.var(dim=(0, 2, 3)).clamp_min(VARIANCE_FLOOR)
            costs.append(((student - teacher) ** 2).mean(dim=(0, 2, 3)).div(variance).mean())
        self._student.clear()
        self._teacher.clear()
        return torch.stack(costs).mean()

    def close(self) -> None:
        for model in self._models:
            model.taps = None


def feature_hints(
    student: DetectNetV2, teacher: DetectNetV2 | None, pruned_model: Path | None, weight: float
) -> FeatureHints | None:
    """Hints for a retrain with `weight` > 0: the teacher and the kept channels recorded in `pruned_model`
    (every channel when it has the teacher's widths, e.g. quantisation-aware training of the same model)."""
    if weight <= 0:
        return None
    from gpu_worker.detection.checkpoint import load_model

    if teacher is None or pruned_model is None:
        raise UserError("feature hints need a teacher model and the pruned model file it was cut from")
    _, meta = load_model(pruned_model)
    kept = meta.extra.get(KEPT_CHANNELS_KEY)
    if kept is None and dict(meta.plan.widths) == dict(teacher.plan.widths):
        kept = {name: list(range(width)) for name, width in meta.plan.widths.items()}  # not pruned: all kept
    if not isinstance(kept, dict):
        raise UserError(
            f"{pruned_model} does not record which teacher channels it kept ({KEPT_CHANNELS_KEY!r}); feature hints "
            "need a model written by the pipeline's pruning"
        )
    return FeatureHints(student, teacher, kept)
