"""The model now in the job's channel, for the quality gate's comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_worker.pipeline.base_model import NATIVE_MODEL_FILE
from gpu_worker.pipeline.channels import read_channel
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.layout import model_prefix


@dataclass(frozen=True)
class ProductionModel:
    version: str
    path: Path


def production_model(ctx: PipelineContext, dest: Path) -> ProductionModel | None:
    pointer, _ = read_channel(ctx.store, ctx.job.channel)
    if pointer is None:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    ctx.store.download_file(model_prefix(pointer.model_version) + NATIVE_MODEL_FILE, dest)
    return ProductionModel(pointer.model_version, dest)
