"""The job's stages, in order. Each is a function of the PipelineContext returning a StageResult."""

from __future__ import annotations

from gpu_worker.pipeline.runner import Stage
from gpu_worker.pipeline.stages.data import fetch, prepare, validate
from gpu_worker.pipeline.stages.model import evaluate, export, prune, retrain, train
from gpu_worker.pipeline.stages.release import build_engine, notify, publish
from peoplenet_contracts import StageName

STAGES: list[Stage] = [
    Stage(StageName.FETCH, fetch),
    Stage(StageName.VALIDATE, validate),
    Stage(StageName.PREPARE, prepare),
    Stage(StageName.TRAIN, train),
    Stage(StageName.PRUNE, prune),
    Stage(StageName.RETRAIN, retrain),
    Stage(StageName.EVALUATE, evaluate),
    Stage(StageName.EXPORT, export),
    Stage(StageName.BUILD_ENGINE, build_engine),
    Stage(StageName.PUBLISH, publish),
    Stage(StageName.NOTIFY, notify),
]

__all__ = ["STAGES"]
