"""Pick the training backend for a job: the job's own choice, else configuration."""

from __future__ import annotations

from gpu_worker.backends.base import TrainingBackend as Backend
from gpu_worker.config import Settings
from peoplenet_contracts import RetrainJob, TrainingBackend


def backend_for(job: RetrainJob, settings: Settings) -> Backend:
    if (job.backend or TrainingBackend(settings.worker.backend)) is TrainingBackend.TAO:
        from gpu_worker.backends.tao_backend import TaoBackend

        return TaoBackend(settings)
    from gpu_worker.backends.torch_backend import TorchBackend

    return TorchBackend(settings)
