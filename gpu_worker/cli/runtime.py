"""Wiring shared by the service commands: settings -> adapters -> worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_worker.adapters import Adapters
    from gpu_worker.config import Settings
    from gpu_worker.worker.consumer import Worker
    from gpu_worker.worker.shutdown import Shutdown


def build_worker(settings: Settings, adapters: Adapters, shutdown: Shutdown | None = None) -> Worker:
    from gpu_worker.backends.factory import backend_for
    from gpu_worker.pipeline.stages import STAGES
    from gpu_worker.worker.consumer import Worker

    return Worker(settings, adapters, lambda job: backend_for(job, settings), STAGES, shutdown=shutdown)
