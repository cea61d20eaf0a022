"""`peoplenet-retrain deepstream-config MODEL_DIR -o DIR`: nvinfer config + labels for a published model."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("deepstream-config")
    def deepstream_config(
        model_dir: Path = typer.Argument(
            ..., help="Local folder of a published model (manifest.json, model.onnx, ...)"
        ),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Where to write the config, labels and ONNX"),
        engine_json: Path | None = typer.Option(
            None, "--engine-json", help="engine.json of the engine to use (sets precision and model-engine-file)"
        ),
        spec: Path | None = typer.Option(None, "--spec", help="TAO spec for clustering (default: the model's)"),
        batch_size: int | None = typer.Option(None, "--batch-size", min=1),
        gpu_id: int = typer.Option(0, "--gpu-id", min=0),
    ) -> None:
        """Write config_infer_primary_peoplenet.txt and labels_peoplenet.txt, checked against the model."""
        from gpu_worker.deepstream import write_deepstream_config
        from gpu_worker.errors import UserError
        from peoplenet_contracts import EngineManifest

        if not model_dir.is_dir():
            raise UserError(f"{model_dir} is not a folder; give the local folder of a published model")
        engine = None
        if engine_json is not None:
            if not engine_json.is_file():
                raise UserError(f"--engine-json {engine_json} does not exist")
            engine = EngineManifest.from_json(engine_json.read_text())
        files = write_deepstream_config(model_dir, out_dir, engine, spec=spec, batch_size=batch_size, gpu_id=gpu_id)
        typer.echo(f"{files.config}\n{files.labels}\n{files.model_file}")
