"""What every stage gets: the job, the store, a local work folder, the backend, stop/progress hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpu_worker.backends.base import TrainingBackend
from gpu_worker.config import Settings
from gpu_worker.pipeline.layout import stage_prefix
from gpu_worker.ports.notifier import Notifier
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import RetrainJob


@dataclass
class PipelineContext:
    job: RetrainJob
    store: ObjectStore
    settings: Settings
    work_dir: Path  # local mirror of runs/<job_id>/
    backend: TrainingBackend
    notifier: Notifier
    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[str, str], None] = lambda stage, message: None
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # per finished stage, from its marker
    current_stage: str = ""

    def stage_dir(self, stage: str) -> Path:
        path = self.work_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def local_stage_dir(self, stage: str) -> Path:
        """A finished stage's outputs, downloaded from the store when this worker did not run it."""
        path = self.stage_dir(stage)
        if not any(path.iterdir()):
            self.store.download_prefix(stage_prefix(self.job.job_id, stage), path)
        return path

    def value(self, stage: str, name: str) -> str | None:
        return self.values.get(stage, {}).get(name)
