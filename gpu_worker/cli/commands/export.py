"""`peoplenet-retrain export -m MODEL -o OUT.onnx`: ONNX with TAO's tensor names, plus labels.txt."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        model: Path = typer.Option(..., "-m", "--model", help="Our model file (.pt)"),
        output: Path = typer.Option(..., "-o", "--output_file", help="ONNX file to write"),
        opset: int = typer.Option(13, "--opset", help="ONNX opset (13 suits TensorRT 8.0 and later)"),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare onnxruntime with PyTorch"),
    ) -> None:
        """Export for DeepStream/TensorRT: input_1:0 [N,3,H,W], output_cov/Sigmoid:0, output_bbox/BiasAdd:0."""
        from gpu_worker.errors import UserError
        from gpu_worker.export.labels import labels_path_for
        from gpu_worker.export.onnx_export import ExportError, export_onnx

        if output.suffix.lower() != ".onnx":
            raise UserError(f"--output_file {output} must end in .onnx")
        try:
            written = export_onnx(model, output, opset, verify=verify)
        except ExportError as exc:
            raise UserError(f"export of {model} failed: {exc}") from exc
        typer.echo(f"wrote {written}")
        typer.echo(f"wrote {labels_path_for(written)}")
