"""The interface both training backends implement; every stage after export is shared.

Paths are host paths inside the job's work folder. A backend raises `PermanentJobError` for input
that can never work (bad spec, missing base model) and `RetryableJobError` for transient trouble.
Long steps check `ctx.should_stop()` at safe points (epoch ends) and return after checkpointing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peoplenet_contracts import RetrainJob


@dataclass
class StageContext:
    job: RetrainJob
    work_dir: Path  # runs/<job_id>/ mirrored locally; each stage writes under work_dir/<stage>/
    dataset_dir: Path  # KITTI folder: images/, labels/
    spec_path: Path  # experiment spec (TAO text format)
    retrain_spec_path: Path | None = None
    progress: Callable[[str], None] = lambda message: None  # "epoch 3/10 loss=0.12" -> ledger/logs
    should_stop: Callable[[], bool] = lambda: False  # SIGTERM / spot notice: checkpoint and return
    device: str = "auto"
    extra: dict[str, str] = field(default_factory=dict)

    def stage_dir(self, stage: str) -> Path:
        path = self.work_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class ModelArtifact:
    """A trained model in the backend's native format (torch checkpoint, TAO .tlt/.hdf5)."""

    path: Path
    num_params: int | None = None
    resumed_from: str | None = None  # checkpoint a training run continued from, if any


@dataclass(frozen=True)
class ExportResult:
    """Files every later stage consumes. Exactly one of onnx/etlt is set."""

    onnx: Path | None
    etlt: Path | None
    labels: Path  # one class a line, channel order
    int8_onnx: Path | None = None  # QDQ model (explicit quantisation)
    calibration_cache: Path | None = None  # TensorRT implicit-calibration cache, when produced
    classes: tuple[str, ...] = ()
    input_dims: tuple[int, int, int] = (3, 544, 960)


@dataclass(frozen=True)
class TrainingStopped(Exception):
    """Training stopped at a safe point on request; resume later from `checkpoint`."""

    checkpoint: Path


class TrainingBackend(ABC):
    name: str

    @abstractmethod
    def prepare(self, ctx: StageContext) -> None:
        """Make the dataset consumable (e.g. TAO dataset_convert); may be a no-op."""

    @abstractmethod
    def train(self, ctx: StageContext, base_model: Path | None) -> ModelArtifact:
        """Train from base_model (None = from scratch); resume from the latest checkpoint if present."""

    @abstractmethod
    def prune(self, ctx: StageContext, model: ModelArtifact) -> ModelArtifact: ...

    @abstractmethod
    def retrain(self, ctx: StageContext, pruned: ModelArtifact) -> ModelArtifact: ...

    @abstractmethod
    def evaluate(self, ctx: StageContext, model: ModelArtifact) -> dict[str, float]:
        """Metrics keyed like 'AP/person', 'mAP'."""

    @abstractmethod
    def export(self, ctx: StageContext, model: ModelArtifact) -> ExportResult: ...
