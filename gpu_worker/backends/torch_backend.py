"""The native PyTorch backend: our DetectNet_v2 trainer, TAO-style pruning, ONNX + INT8 QDQ export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gpu_worker.backends.base import (
    ExportResult,
    ModelArtifact,
    StageContext,
    TrainingBackend,
    TrainingStopped,
)
from gpu_worker.config import Settings

if TYPE_CHECKING:
    from gpu_worker.pruning import PruneSettings
    from gpu_worker.specs.proto.experiment_pb2 import Experiment

MODEL_FILE = "model.pt"


def _results_dir(ctx: StageContext, default: str) -> Path:
    path = Path(ctx.extra.get("results_dir") or ctx.stage_dir(default))
    path.mkdir(parents=True, exist_ok=True)
    return path


class TorchBackend(TrainingBackend):
    name = "torch"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def prepare(self, ctx: StageContext) -> None:
        """Nothing to convert: the trainer reads KITTI folders and builds its own image cache."""

    def _train(
        self, ctx: StageContext, spec: Path, base: Path | None, stage: str, teacher: Path | None = None
    ) -> ModelArtifact:
        from gpu_worker.pruning.prune import count_params
        from gpu_worker.training.checkpoint import latest_checkpoint
        from gpu_worker.training.train import CHECKPOINT_DIR, train

        results = _results_dir(ctx, stage)
        checkpoint = latest_checkpoint(results / CHECKPOINT_DIR)
        result = train(
            spec,
            results,
            resume=checkpoint is not None,
            base_model=base,
            device=ctx.device,
            progress=ctx.progress,
            should_stop=ctx.should_stop,
            cache_dir=ctx.work_dir / "image-cache",
            teacher=teacher,
            distill_weight=self.settings.prune.distill_weight,
            hint_weight=self.settings.prune.hint_weight if teacher is not None else 0.0,
        )
        if result.stopped:
            assert result.checkpoint_path is not None
            raise TrainingStopped(result.checkpoint_path)
        from gpu_worker.detection.checkpoint import load_model

        model, _ = load_model(result.model_path)
        return ModelArtifact(result.model_path, count_params(model), checkpoint.name if checkpoint else None)

    def train(self, ctx: StageContext, base_model: Path | None) -> ModelArtifact:
        return self._train(ctx, ctx.spec_path, base_model, "train")

    def prune(self, ctx: StageContext, model: ModelArtifact) -> ModelArtifact:
        from gpu_worker.detection.checkpoint import load_model, save_model
        from gpu_worker.pruning import prune_model
        from gpu_worker.training.hints import KEPT_CHANNELS_KEY

        options = self.settings.prune
        loaded, meta = load_model(model.path)
        results = _results_dir(ctx, "prune")
        if options.target_reduction is None:
            result = prune_model(loaded, self._prune_settings())
            pruned, before, after = result.model, result.params_before, result.params_after
            kept = result.kept_channels()
            how = f"-pth {options.threshold}"
        else:
            from gpu_worker.training.prune_retrain import prune_with_retraining

            stepped = prune_with_retraining(
                loaded,
                meta,
                self._prune_settings(),
                ctx.retrain_spec_path or ctx.spec_path,
                results / "steps",
                target_reduction=options.target_reduction,
                step_reduction=options.step_reduction,
                step_epochs=options.step_epochs,
                device=ctx.device,
                cache_dir=ctx.work_dir / "image-cache",
                progress=ctx.progress,
                distill_weight=options.distill_weight if options.distill else None,
                teacher=model.path,
                hint_weight=options.hint_weight,
                reconstruct=options.reconstruct,
            )
            pruned, before, after, kept = stepped.model, stepped.params_before, stepped.params_after, stepped.kept
            how = f"{len(stepped.steps)} steps to -{options.target_reduction:.0%}"
        out = results / MODEL_FILE
        extra = {**meta.extra, "pruned_from_params": before, KEPT_CHANNELS_KEY: kept}
        save_model(out, pruned, meta.classes, meta.input_hw, extra)
        ctx.progress(f"pruned ({how}): {before:,} -> {after:,} parameters ({after / before:.1%} kept)")
        return ModelArtifact(out, after)

    def _qat_epochs(self, spec: Experiment) -> int:
        configured = self.settings.export.qat_epochs
        if configured is not None:
            return configured
        return max(1, int(spec.training_config.num_epochs) // 3)

    def _quantization_aware(self, ctx: StageContext, model: Path, spec: Path, results: Path, epochs: int) -> Path:
        """QAT of the exported model (its own teacher), resumed when a checkpoint of an earlier attempt exists."""
        from gpu_worker.training.checkpoint import latest_checkpoint
        from gpu_worker.training.qat_finetune import quantization_aware_finetune
        from gpu_worker.training.train import CHECKPOINT_DIR

        ctx.progress(f"quantisation-aware fine-tuning for INT8: {epochs} epochs")
        result = quantization_aware_finetune(
            model,
            spec,
            results,
            epochs=epochs,
            device=ctx.device,
            cache_dir=ctx.work_dir / "image-cache",
            teacher=model,
            distill_weight=1.0,
            hint_weight=self.settings.export.qat_hint_weight,
            resume=latest_checkpoint(results / CHECKPOINT_DIR) is not None,
        )
        return result.model_path

    def _prune_settings(self) -> PruneSettings:
        from gpu_worker.pruning import PruneSettings
        from gpu_worker.pruning.criteria import Equalization, Normalizer

        options = self.settings.prune
        return PruneSettings(
            threshold=options.threshold,
            normalizer=Normalizer(options.normalizer),
            equalization=Equalization(options.equalization),
            granularity=options.granularity,
            min_num_filters=options.min_num_filters,
            excluded_layers=tuple(options.excluded_layers),
            scale_by_batch_norm=options.scale_by_batch_norm,
            keep_fraction=options.keep_fraction,
        )

    def retrain(self, ctx: StageContext, pruned: ModelArtifact) -> ModelArtifact:
        spec = ctx.retrain_spec_path or ctx.spec_path
        return self._train(ctx, spec, pruned.path, "retrain", self._teacher(ctx))

    def _teacher(self, ctx: StageContext) -> Path | None:
        """The unpruned model the retrain distils from: the train stage's model, which the prune stage cut."""
        if not self.settings.prune.distill:
            return None
        teacher = ctx.work_dir / "train" / MODEL_FILE
        if not teacher.is_file():
            ctx.progress(f"no distillation: the unpruned model {teacher} is not on this worker")
            return None
        ctx.progress(f"retraining distils from {teacher} (weight {self.settings.prune.distill_weight})")
        return teacher

    def evaluate(self, ctx: StageContext, model: ModelArtifact) -> dict[str, float]:
        from gpu_worker.training.evaluate import evaluate_model

        out = _results_dir(ctx, "evaluate") / "metrics.json"
        result = evaluate_model(model.path, ctx.spec_path, device=ctx.device, out_path=out)
        return result.to_dict()

    def export(self, ctx: StageContext, model: ModelArtifact) -> ExportResult:
        from gpu_worker.detection.checkpoint import load_model
        from gpu_worker.export.int8 import export_int8, quantize_qdq, write_calibration_cache
        from gpu_worker.export.labels import labels_path_for
        from gpu_worker.export.onnx_export import export_onnx
        from gpu_worker.specs import load_experiment_spec
        from gpu_worker.training.dataset import select_splits
        from gpu_worker.training.qat import qat_metadata

        out = _results_dir(ctx, "export")
        onnx_path = export_onnx(model.path, out / "model.onnx")
        _, meta = load_model(model.path)
        int8_path = cache_path = None
        if self.settings.export.int8:
            spec = load_experiment_spec(ctx.spec_path)
            train_samples, _ = select_splits(spec)
            images = [item.sample.image for item in train_samples[: self.settings.export.calibration_images]]
            # The legacy cache (tao-converter -c, trtexec --calib) goes with model.onnx: post-training calibration.
            calibrated = quantize_qdq(onnx_path, out / "model_int8.onnx", images)
            cache_path = write_calibration_cache(onnx_path, calibrated.activation_scales, out / "calibration.cache")
            int8_path = calibrated.onnx
            qat_spec = ctx.spec_path
            if ctx.extra.get("final_stage") == "retrain" and ctx.retrain_spec_path is not None:
                qat_spec = ctx.retrain_spec_path
            epochs = self._qat_epochs(spec)
            if qat_metadata(meta) is not None:  # trained with enable_qat: its own scales, no second QAT
                int8_path = export_int8(model.path, onnx_path, out / "model_int8.onnx", images).onnx
            elif epochs:
                qat_model = self._quantization_aware(ctx, model.path, qat_spec, out / "qat", epochs)
                qat_onnx = export_onnx(qat_model, out / "qat" / "model_qat_float.onnx")
                int8_path = export_int8(qat_model, qat_onnx, out / "model_int8.onnx", images).onnx
        return ExportResult(
            onnx=onnx_path,
            etlt=None,
            labels=labels_path_for(onnx_path),
            int8_onnx=int8_path,
            calibration_cache=cache_path,
            classes=tuple(meta.classes),
            input_dims=(3, meta.input_hw[0], meta.input_hw[1]),
        )
