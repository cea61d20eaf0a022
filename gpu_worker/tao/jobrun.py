"""Glue between a job's stage and the runner: mounts for the job's folders, the stage's log file,
progress to the job, and a stop request turned into `TrainingStopped`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path, PurePosixPath

from gpu_worker.backends.base import StageContext, TrainingStopped
from gpu_worker.tao.command import WORKSPACE, MountPlan, TaoInvocation, TaoTask
from gpu_worker.tao.errors import TaoStopped
from gpu_worker.tao.logparse import TaoLogParser, TaoProgress
from gpu_worker.tao.runner import TaoRunner, TaoRunResult

log = logging.getLogger(__name__)

DATA_MOUNT = WORKSPACE / "data"  # the job's KITTI folder, read-only
RESULTS_MOUNT = WORKSPACE / "results"  # the job's work folder (runs/<job_id>/), read-write
MODELS_MOUNT = WORKSPACE / "models"  # base models outside the work folder, read-only
TAO_MODEL_SUFFIXES = (".hdf5", ".tlt", ".etlt", ".onnx")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def job_mounts(ctx: StageContext, *models: Path | None) -> MountPlan:
    """Dataset, work folder, and the folder of every model file that lies outside both."""
    plan = MountPlan()
    plan.add(ctx.dataset_dir, DATA_MOUNT, read_only=True)
    plan.add(ctx.work_dir, RESULTS_MOUNT)
    extra = 0
    for model in models:
        if model is None:
            continue
        try:
            plan.container_path(model)
        except ValueError:
            plan.add(model.resolve().parent, PurePosixPath(MODELS_MOUNT, str(extra)), read_only=True)
            extra += 1
    return plan


def tao_model_file(ctx: StageContext, stage: str, model: Path) -> Path:
    """The model under a name TAO accepts.

    TAO picks the loader by extension (.hdf5 Keras, .tlt encrypted); a pipeline may have stored the
    model under another name (model.pt), so such a file is copied into the stage folder as
    input_model.hdf5 (HDF5 signature) or input_model.tlt.
    """
    if model.suffix in TAO_MODEL_SUFFIXES:
        return model
    with model.open("rb") as handle:
        suffix = ".hdf5" if handle.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC else ".tlt"
    target = ctx.stage_dir(stage) / f"input_model{suffix}"
    shutil.copyfile(model, target)
    return target


def run_stage_task(
    runner: TaoRunner,
    ctx: StageContext,
    stage: str,
    task: TaoTask,
    args: list[str],
    mounts: MountPlan,
    *,
    parser: TaoLogParser | None = None,
    out_dir: Path | None = None,
) -> TaoRunResult:
    """Run one TAO task for a stage; output appended to <out_dir or stage>/<task>.log, progress to the job."""
    stage_dir = ctx.stage_dir(stage)
    if ctx.should_stop():
        raise TrainingStopped(checkpoint=stage_dir)
    log_dir = out_dir or stage_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{task.value.replace('-', '_')}.log"
    job_id = ctx.job.job_id

    with log_path.open("a", encoding="utf-8") as log_file:

        def on_line(line: str) -> None:  # lines arrive masked
            log_file.write(line + "\n")
            log_file.flush()
            log.info("%s", line, extra={"job_id": job_id, "stage": stage, "tao_task": str(task)})

        def on_progress(progress: TaoProgress) -> None:
            ctx.progress(progress.message)

        invocation = TaoInvocation(task=task, args=tuple(args), mounts=mounts)
        try:
            return runner.run(
                invocation,
                on_line=on_line,
                on_progress=on_progress,
                should_stop=ctx.should_stop,
                parser=parser or TaoLogParser(),
            )
        except TaoStopped as exc:
            # TAO train resumes from the newest model.epoch-N.ckzip in its results folder.
            raise TrainingStopped(checkpoint=stage_dir) from exc
