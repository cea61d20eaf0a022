"""`peoplenet-retrain evaluate -e SPEC -m MODEL`: AP per class of a .pt, .onnx or .tflite model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gpu_worker.specs.proto.experiment_pb2 import Experiment


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        spec: Path = typer.Option(..., "-e", "--experiment_spec", help="TAO experiment spec (classes, eval settings)"),
        model: Path = typer.Option(..., "-m", "--model", help="Model: our .pt file, an .onnx (fp32/INT8) or .tflite"),
        data: Path | None = typer.Option(
            None, "--data", "-d", help="KITTI folder (images/, labels/) instead of the spec's validation split"
        ),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write metrics.json here"),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
        batch_size: int | None = typer.Option(None, "--batch-size", "-b", help="Default: the spec's batch size"),
        reference: bool = typer.Option(
            False, "--reference", help="Also report AP50 by the fixed PeopleNet reference protocol (NMS, 101-point)"
        ),
    ) -> None:
        """Evaluate a model with the spec's post-processing and evaluation_config (as TAO's evaluate)."""
        from rich.console import Console
        from rich.progress import Progress

        from gpu_worker.specs import load_experiment_spec
        from gpu_worker.training.evaluate import evaluate_model

        console = Console()
        experiment = load_experiment_spec(spec)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("evaluating", total=None)
            result = evaluate_model(
                model,
                experiment,
                data,
                device,
                out_path=out,
                batch_size=batch_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        console.print(result.metrics.to_table(title=f"{model.name} on {result.data}"))
        if reference:
            measured = _print_reference(console, model, experiment, data, device)
            if result.metrics_path is not None:
                import json
                import math

                saved = json.loads(result.metrics_path.read_text())
                saved["reference"] = {k: None if math.isnan(v) else v for k, v in measured.items()}
                result.metrics_path.write_text(json.dumps(saved, indent=2) + "\n")
        if result.metrics_path is not None:
            typer.echo(f"wrote {result.metrics_path}")


def _print_reference(
    console: Console, model: Path, experiment: Experiment, data: Path | None, device: str
) -> dict[str, float]:
    """AP50 per class by the reference protocol at the model's input size (NaN: no such objects)."""
    from gpu_worker.detection.reference_eval import reference_ap50
    from gpu_worker.errors import UserError
    from gpu_worker.specs import class_mapping, target_class_names
    from gpu_worker.training.predictors import open_predictor

    if data is None:
        raise UserError("--reference needs --data DIR (a KITTI folder): the protocol reads a folder directly")
    names = target_class_names(experiment)
    channel = {name: i for i, name in enumerate(names)}
    class_map = {label: channel[target] for label, target in class_mapping(experiment).items() if target in channel}
    predictor = open_predictor(model, device, fallback_classes=names)
    height, width = predictor.input_hw
    ref = reference_ap50(predictor.predict_one, data, class_map, input_w=width, input_h=height)
    named = ref.named(names)
    for name, value in named.items():
        console.print(f"reference {name} = {value:.4f} ({width}x{height}, cov > 0.1, NMS 0.5, 101-point)")
    return named
