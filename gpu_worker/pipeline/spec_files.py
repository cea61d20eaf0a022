"""The job's spec files: found by name under specs/ (or in the store), data paths pointed at the job's dataset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.backends.base import StageContext
from gpu_worker.errors import UserError
from gpu_worker.pipeline.context import PipelineContext

TRAIN_SPEC = "experiment.txt"
RETRAIN_SPEC = "retrain.txt"


def specs_dir() -> Path:
    """specs/ of a source checkout, or the copy packaged inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "specs", here.parents[1] / "_specs"):
        if candidate.is_dir():
            return candidate
    raise UserError("cannot find the specs/ folder (neither a source checkout nor an installed package)")


@dataclass(frozen=True)
class JobSpecs:
    train: Path
    retrain: Path


def _spec_source(ctx: PipelineContext, name: str, dest: Path) -> Path:
    """A spec name under specs/, else a key in the object store."""
    local = specs_dir() / name
    if local.is_file():
        dest.write_text(local.read_text())
        return dest
    try:
        ctx.store.download_file(name, dest)
    except FileNotFoundError as exc:
        raise UserError(f"spec {name!r} is neither in {specs_dir()} nor in the store") from exc
    return dest


def retrain_spec_name(train_spec: str) -> str | None:
    """peoplenet_train.txt -> peoplenet_retrain.txt, when such a sibling exists."""
    if "train" not in train_spec:
        return None
    candidate = train_spec.replace("train", "retrain", 1)
    return candidate if (specs_dir() / candidate).is_file() else None


def resolve_spec(ctx: PipelineContext, dataset: Path, out_dir: Path) -> JobSpecs:
    """Write experiment.txt and retrain.txt into out_dir, reading the job's dataset by a relative path.

    Relative paths keep the files valid on another worker that resumes the job in another folder.
    """
    from gpu_worker.specs import load_experiment_spec, save_experiment_spec, with_data_paths, with_pretrained_model

    relative_dataset = Path(os.path.relpath(dataset, out_dir))
    result = []
    for name, filename in ((ctx.job.spec, TRAIN_SPEC), (retrain_spec_name(ctx.job.spec) or ctx.job.spec, RETRAIN_SPEC)):
        raw = _spec_source(ctx, name, out_dir / f"source-{filename}")
        spec = with_data_paths(load_experiment_spec(raw), relative_dataset)
        # The pipeline passes the base model explicitly (lineage in the ledger), never through the spec.
        spec = with_pretrained_model(spec, "")
        target = out_dir / filename
        save_experiment_spec(spec, target)
        raw.unlink()
        load_experiment_spec(target)  # what we wrote must load: fail here, not in training
        result.append(target)
    return JobSpecs(train=result[0], retrain=result[1])


def backend_context(ctx: PipelineContext, specs: JobSpecs | None = None) -> StageContext:
    """The backend's view of the job: local paths only, plus stop/progress hooks."""
    from gpu_worker.pipeline.stages.data import ensure_dataset

    prepare_dir = ctx.work_dir / "prepare"
    if specs is None:
        ctx.local_stage_dir("prepare")
        specs = JobSpecs(train=prepare_dir / TRAIN_SPEC, retrain=prepare_dir / RETRAIN_SPEC)
    return StageContext(
        job=ctx.job,
        work_dir=ctx.work_dir,
        dataset_dir=ensure_dataset(ctx),
        spec_path=specs.train,
        retrain_spec_path=specs.retrain,
        progress=lambda message: ctx.progress(ctx.current_stage, message),
        should_stop=ctx.should_stop,
        device=ctx.settings.worker.device,
    )
