"""The `tao` training backend: each stage runs NVIDIA's TAO container through the Docker SDK.

Stage folders under the job's work folder (mounted at /workspace/tao-experiments/results):
  prepare/tao/   dataset_convert.txt, tfrecords/kitti-fold-*-shard-*
  train/         TAO results folder (-r): tao_spec.txt, model.epoch-N.ckzip, weights/model.hdf5,
                 history.json (per-epoch loss, learning rate, validation mAP)
  prune/         model.hdf5 (pruned)
  retrain/       as train/, from the pruned model (load_graph: true)
  evaluate/      tao_spec.txt, metrics.json (or in ctx.extra["results_dir"])
  export/        model.onnx (TAO >= 5) or model.etlt (older TAO), labels.txt, TAO's own files in tao/
Every stage also keeps the task's (masked) output as <task>.log. A model stored under a name TAO
does not load (model.pt) is copied into the stage as input_model.hdf5 / input_model.tlt first.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from gpu_worker.backends.base import ExportResult, ModelArtifact, StageContext, TrainingBackend
from gpu_worker.config import Settings, TaoSettings
from gpu_worker.tao.command import MountPlan, TaoTask
from gpu_worker.tao.errors import TaoTaskFailed
from gpu_worker.tao.jobrun import job_mounts, run_stage_task, tao_model_file
from gpu_worker.tao.logparse import TaoLogParser
from gpu_worker.tao.runner import TaoRunner
from gpu_worker.tao.specs import (
    TFRECORDS_NAME,
    dataset_convert_spec,
    dataset_image_extension,
    experiment_for_container,
    load_experiment,
    summarize,
    write_spec_text,
)

log = logging.getLogger(__name__)

MODEL_NAME = "model"
SPEC_FILE = "tao_spec.txt"
HISTORY_FILE = "history.json"  # same file and shape as the torch backend's, for the run report
_SHIPPED_CONVERT_SPEC = "dataset_convert.txt"


def tao_settings(settings: Settings | TaoSettings) -> TaoSettings:
    return settings.tao if isinstance(settings, Settings) else settings


def _shipped_convert_spec() -> Path | None:
    here = Path(__file__).resolve()
    for folder in (here.parents[2] / "specs", here.parents[1] / "_specs"):
        if (folder / _SHIPPED_CONVERT_SPEC).is_file():
            return folder / _SHIPPED_CONVERT_SPEC
    return None


def _write_history(path: Path, new: list[dict[str, float]]) -> None:
    """Per-epoch loss / learning rate / mAP, merged with the epochs of a run that was stopped earlier."""
    old = json.loads(path.read_text()) if path.is_file() else []
    first_new = min((entry["epoch"] for entry in new), default=float("inf"))
    merged = [entry for entry in old if entry.get("epoch", 0) < first_new] + new
    path.write_text(json.dumps(merged, indent=2) + "\n")


def _trained_model(results: Path, task: str) -> Path:
    """TAO >= 5 writes weights/<name>.hdf5; older TAO wrote weights/<name>.tlt."""
    for suffix in (".hdf5", ".tlt"):
        candidate = results / "weights" / f"{MODEL_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    raise TaoTaskFailed(
        f"TAO `{task}` finished but wrote no {results / 'weights' / MODEL_NAME}.hdf5 (or .tlt)",
        task=task,
        exit_code=0,
        last_lines=(),
    )


class TaoBackend(TrainingBackend):
    name = "tao"

    def __init__(self, settings: Settings | TaoSettings, runner: TaoRunner | None = None) -> None:
        self.settings = tao_settings(settings)
        self.runner = runner or TaoRunner(self.settings)

    # -- stages --------------------------------------------------------------------------------
    def prepare(self, ctx: StageContext) -> None:
        """TAO dataset_convert: the job's KITTI folder -> TFRecords split into 2 folds (fold 0 = val)."""
        out = ctx.stage_dir("prepare") / "tao"
        tfrecords = out / "tfrecords"
        shutil.rmtree(tfrecords, ignore_errors=True)
        tfrecords.mkdir(parents=True)
        experiment = load_experiment(ctx.spec_path)
        mounts = job_mounts(ctx)
        source = ctx.extra.get("dataset_convert_spec")
        convert = dataset_convert_spec(
            Path(source) if source else _shipped_convert_spec(),
            experiment,
            mounts,
            dataset_dir=ctx.dataset_dir,
            image_extension=dataset_image_extension(ctx.dataset_dir),
        )
        spec_path = write_spec_text(convert, out / "dataset_convert.txt")
        args = ["-d", mounts.container_path(spec_path), "-o", f"{mounts.container_path(tfrecords)}/{TFRECORDS_NAME}"]
        result = run_stage_task(self.runner, ctx, "prepare", TaoTask.DATASET_CONVERT, args, mounts)
        if not any(tfrecords.glob(f"{TFRECORDS_NAME}*")):
            raise TaoTaskFailed(
                f"TAO dataset_convert wrote no TFRecords into {tfrecords}",
                task=result.task,
                exit_code=0,
                last_lines=result.last_lines,
            )

    def train(self, ctx: StageContext, base_model: Path | None) -> ModelArtifact:
        return self._train("train", ctx, ctx.spec_path, base_model, load_graph=None)

    def prune(self, ctx: StageContext, model: ModelArtifact) -> ModelArtifact:
        source = tao_model_file(ctx, "prune", model.path)
        out = ctx.stage_dir("prune") / f"{MODEL_NAME}{source.suffix}"
        out.unlink(missing_ok=True)
        mounts = job_mounts(ctx, source)
        s = self.settings
        args = [
            "-m", mounts.container_path(source),
            "-o", mounts.container_path(out),
            "-pth", f"{s.prune_threshold:g}",
            "-eq", "union",
            "-pg", str(s.prune_granularity),
            "-nf", str(s.prune_min_filters),
        ]  # fmt: skip
        result = run_stage_task(self.runner, ctx, "prune", TaoTask.PRUNE, args, mounts)
        if not out.is_file():
            raise TaoTaskFailed(
                f"TAO prune wrote no {out}", task=result.task, exit_code=0, last_lines=result.last_lines
            )
        return ModelArtifact(path=out, num_params=result.parser.num_params)

    def retrain(self, ctx: StageContext, pruned: ModelArtifact) -> ModelArtifact:
        spec = ctx.retrain_spec_path or ctx.spec_path
        return self._train("retrain", ctx, spec, pruned.path, load_graph=True)

    def evaluate(self, ctx: StageContext, model: ModelArtifact) -> dict[str, float]:
        """Metrics into <results_dir>/metrics.json; ctx.extra["results_dir"] (default evaluate/) lets a
        caller evaluate a second model (the production one) without overwriting the first."""
        stage_dir = Path(ctx.extra.get("results_dir") or ctx.stage_dir("evaluate"))
        stage_dir.mkdir(parents=True, exist_ok=True)
        spec_source = self._spec_for(ctx, model)
        source = tao_model_file(ctx, "evaluate", model.path)
        mounts = job_mounts(ctx, source)
        spec_path = self._container_spec(ctx, spec_source, mounts, stage_dir, source)
        args = ["-e", mounts.container_path(spec_path), "-m", mounts.container_path(source)]
        result = run_stage_task(self.runner, ctx, "evaluate", TaoTask.EVALUATE, args, mounts, out_dir=stage_dir)
        metrics = result.parser.finish()
        if "mAP" not in metrics:
            raise TaoTaskFailed(
                "TAO evaluate printed no 'Mean average_precision' block",
                task=result.task,
                exit_code=0,
                last_lines=result.last_lines,
            )
        (stage_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        return metrics

    def export(self, ctx: StageContext, model: ModelArtifact) -> ExportResult:
        stage_dir = ctx.stage_dir("export")
        tao_dir = stage_dir / "tao"
        shutil.rmtree(tao_dir, ignore_errors=True)  # TAO export refuses to overwrite its output
        tao_dir.mkdir(parents=True)
        fmt = self.settings.export_format
        tao_out = tao_dir / f"{MODEL_NAME}.{fmt}"
        spec_source = self._spec_for(ctx, model)
        source = tao_model_file(ctx, "export", model.path)
        mounts = job_mounts(ctx, source)
        spec_path = self._container_spec(ctx, spec_source, mounts, tao_dir, source)
        args = [
            "-m", mounts.container_path(source),
            "-o", mounts.container_path(tao_out),
            "-e", mounts.container_path(spec_path),
            "--gen_ds_config",
        ]  # fmt: skip
        result = run_stage_task(self.runner, ctx, "export", TaoTask.EXPORT, args, mounts)
        if not tao_out.is_file():
            raise TaoTaskFailed(
                f"TAO export wrote no {tao_out}", task=result.task, exit_code=0, last_lines=result.last_lines
            )
        final = stage_dir / tao_out.name
        shutil.copyfile(tao_out, final)
        summary = summarize(load_experiment(spec_source))
        labels = stage_dir / "labels.txt"
        labels.write_text("".join(f"{name}\n" for name in summary.classes))
        self._check_tao_labels(tao_dir / "labels.txt", summary.classes)
        return ExportResult(
            onnx=final if fmt == "onnx" else None,
            etlt=final if fmt == "etlt" else None,
            labels=labels,
            classes=summary.classes,
            input_dims=summary.input_dims,
        )

    def calibration_tensorfile(self, ctx: StageContext, model: ModelArtifact, max_batches: int = 10) -> Path:
        """INT8 calibration batches (TAO's `calibration_tensorfile`) for tao-converter / older engines."""
        stage_dir = ctx.stage_dir("export")
        out = stage_dir / "calibration.tensorfile"
        out.unlink(missing_ok=True)
        source = tao_model_file(ctx, "export", model.path)
        mounts = job_mounts(ctx, source)
        spec_path = self._container_spec(ctx, self._spec_for(ctx, model), mounts, stage_dir / "calibration", source)
        args = ["-e", mounts.container_path(spec_path), "-o", mounts.container_path(out), "-m", str(max_batches)]
        result = run_stage_task(self.runner, ctx, "export", TaoTask.CALIBRATION_TENSORFILE, args, mounts)
        if not out.is_file():
            raise TaoTaskFailed(
                f"TAO calibration_tensorfile wrote no {out}",
                task=result.task,
                exit_code=0,
                last_lines=result.last_lines,
            )
        return out

    # -- helpers -------------------------------------------------------------------------------
    def _train(
        self, stage: str, ctx: StageContext, spec: Path, start_from: Path | None, *, load_graph: bool | None
    ) -> ModelArtifact:
        results = ctx.stage_dir(stage)
        start_from = tao_model_file(ctx, stage, start_from) if start_from else None
        mounts = job_mounts(ctx, start_from)
        experiment = load_experiment(spec)
        container_spec = experiment_for_container(
            experiment,
            mounts,
            dataset_dir=ctx.dataset_dir,
            tfrecords_dir=ctx.stage_dir("prepare") / "tao" / "tfrecords",
            image_extension=dataset_image_extension(ctx.dataset_dir),
            pretrained_model=start_from,
            load_graph=load_graph,
        )
        spec_path = write_spec_text(container_spec, results / SPEC_FILE)
        # TAO resumes from the newest model.epoch-N.ckzip in -r, so a stopped stage continues here.
        args = ["-e", mounts.container_path(spec_path), "-r", mounts.container_path(results), "-n", MODEL_NAME]
        parser = TaoLogParser(total_epochs=summarize(experiment).num_epochs)
        try:
            result = run_stage_task(self.runner, ctx, stage, TaoTask.TRAIN, args, mounts, parser=parser)
        finally:  # also when stopped: the epochs done so far belong to the history
            _write_history(results / HISTORY_FILE, parser.history)
        return ModelArtifact(path=_trained_model(results, f"{stage} (train)"), num_params=result.parser.num_params)

    def _spec_for(self, ctx: StageContext, model: ModelArtifact) -> Path:
        """The spec a model was trained with: the retrain spec for models under retrain/."""
        retrained = model.path.resolve().is_relative_to((ctx.work_dir / "retrain").resolve())
        return ctx.retrain_spec_path if retrained and ctx.retrain_spec_path else ctx.spec_path

    def _container_spec(self, ctx: StageContext, spec: Path, mounts: MountPlan, out_dir: Path, model: Path) -> Path:
        container_spec = experiment_for_container(
            load_experiment(spec),
            mounts,
            dataset_dir=ctx.dataset_dir,
            tfrecords_dir=ctx.stage_dir("prepare") / "tao" / "tfrecords",
            image_extension=dataset_image_extension(ctx.dataset_dir),
            pretrained_model=model,
        )
        return write_spec_text(container_spec, out_dir / SPEC_FILE)

    @staticmethod
    def _check_tao_labels(tao_labels: Path, classes: tuple[str, ...]) -> None:
        if not tao_labels.is_file():
            return
        written = [line.strip() for line in tao_labels.read_text().splitlines() if line.strip()]
        if [c.lower() for c in written] != [c.lower() for c in classes]:
            log.warning("TAO's labels.txt %s disagrees with the spec's class order %s", written, list(classes))


def run_tao_job(
    ctx: StageContext,
    settings: Settings | TaoSettings,
    base_model: Path | None = None,
    runner: TaoRunner | None = None,
) -> ExportResult:
    """prepare -> train -> prune -> retrain (when the job prunes) -> evaluate -> export, in one call.

    `base_model` defaults to ctx.extra["base_model"] (None: train from scratch). Metrics land in
    evaluate/metrics.json; the returned ExportResult is what build_engine and publish consume.
    """
    backend = TaoBackend(settings, runner)
    start = base_model or (Path(ctx.extra["base_model"]) if ctx.extra.get("base_model") else None)
    backend.prepare(ctx)
    model = backend.train(ctx, start)
    default = settings.prune.enabled if isinstance(settings, Settings) else True
    wanted = ctx.job.prune if ctx.job.prune is not None else default
    if wanted:
        model = backend.retrain(ctx, backend.prune(ctx, model))
    metrics = backend.evaluate(ctx, model)
    ctx.progress("metrics " + " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    return backend.export(ctx, model)
