"""`peoplenet-retrain infer -m MODEL -i IMAGES -o OUT`: annotated images + KITTI prediction files."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("infer")
    def infer_cmd(
        model: Path = typer.Option(..., "-m", "--model", help="Our .pt file, an .onnx or a .tflite"),
        images: Path = typer.Option(..., "-i", "--images", help="An image file or a folder of images"),
        out: Path = typer.Option(..., "-o", "--out", help="Output folder (images_annotated/, labels/)"),
        spec: Path | None = typer.Option(
            None, "-e", "--experiment_spec", help="Use this spec's post-processing (default: NMS 0.5, cov > 0.1)"
        ),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
        batch_size: int = typer.Option(8, "--batch-size", "-b"),
    ) -> None:
        """Detect objects in images; boxes are drawn and written in original-image pixels."""
        from rich.progress import Progress

        from gpu_worker.detection.postprocess import PostProcessor
        from gpu_worker.detection.reference_eval import REFERENCE_CONFIG
        from gpu_worker.training.infer import infer_images, list_images
        from gpu_worker.training.predictors import open_predictor

        experiment = None
        if spec is not None:
            from gpu_worker.specs import load_experiment_spec, target_class_names

            experiment = load_experiment_spec(spec, validate=False)
        fallback = target_class_names(experiment) if experiment is not None else None
        predictor = open_predictor(model, device, fallback_classes=fallback)
        if experiment is not None:
            post = PostProcessor.from_spec(experiment, predictor.classes)
        else:
            post = PostProcessor.uniform(predictor.classes, REFERENCE_CONFIG)
        paths = list_images(images)
        with Progress(transient=True) as bar:
            task = bar.add_task("inferring", total=len(paths))
            results = infer_images(
                predictor, post, paths, out, batch_size, lambda done, _: bar.update(task, completed=done)
            )
        total = sum(len(r.detections) for r in results)
        typer.echo(f"{len(results)} images, {total} detections -> {out}")
