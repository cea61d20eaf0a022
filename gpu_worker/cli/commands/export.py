"""`peoplenet-retrain export -m MODEL -o OUT.onnx [--int8]`: ONNX with TAO's tensor names, plus labels.txt.

`--int8` also writes `OUT_int8.onnx` (QDQ): with the QAT scales of a quantisation-aware-trained model,
else calibrated on `--calibration-dir` images.
"""

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
        int8: bool = typer.Option(False, "--int8", help="Also write OUT_int8.onnx (QDQ INT8 for TensorRT)"),
        calibration_dir: Path | None = typer.Option(
            None, "--calibration-dir", help="Training images (or a KITTI folder with images/) to calibrate INT8"
        ),
        calibration_images: int = typer.Option(64, "--calibration-images", help="How many images to calibrate on"),
    ) -> None:
        """Export for DeepStream/TensorRT: input_1:0 [N,3,H,W], output_cov/Sigmoid:0, output_bbox/BiasAdd:0."""
        from gpu_worker.detection.checkpoint import load_model
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
        if int8:
            from gpu_worker.export.int8 import export_int8
            from gpu_worker.training.qat import qat_metadata

            images = _calibration_images(calibration_dir, calibration_images)
            _, meta = load_model(model)
            if qat_metadata(meta) is None and not images:
                raise UserError(f"--int8: {model} is not quantisation-aware trained; pass --calibration-dir")
            result = export_int8(model, written, output.with_name(f"{output.stem}_int8.onnx"), images)
            typer.echo(f"wrote {result.onnx} (activation scales: {result.method})")


def _calibration_images(folder: Path | None, count: int) -> list[Path]:
    """The first `count` images (sorted) of `folder` or `folder/images`; none without a folder."""
    from gpu_worker.errors import UserError

    if folder is None:
        return []
    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    if not images_dir.is_dir():
        raise UserError(f"--calibration-dir {folder} is not a folder")
    suffixes = (".jpg", ".jpeg", ".png")
    return sorted(p for p in images_dir.iterdir() if p.suffix.lower() in suffixes)[: max(count, 1)]
