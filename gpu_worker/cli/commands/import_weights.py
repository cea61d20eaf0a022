"""`peoplenet-retrain import-weights SOURCE -o MODEL`: our model file from PeopleNet/TAO weights."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("import-weights")
    def import_weights_cmd(
        source: Path = typer.Argument(..., help="A .tflite or .onnx DetectNet_v2 (e.g. PeopleNet), or our .pt"),
        output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.pt)"),
        classes: str | None = typer.Option(
            None, "--classes", help="Class names in channel order, e.g. person,bag,face (default for 3 classes)"
        ),
    ) -> None:
        """Import weights by graph structure into a model file that train/prune/export accept."""
        from gpu_worker.errors import UserError
        from gpu_worker.importers import import_weights
        from gpu_worker.pruning import count_params

        names = [c.strip() for c in classes.split(",") if c.strip()] if classes is not None else None
        if names is not None and not names:
            raise UserError("--classes is empty: give names in channel order, e.g. --classes person,bag,face")
        imported = import_weights(source, names)
        path = imported.save(output)
        plan = imported.model.plan
        batch_norm = "yes" if imported.model.use_batch_norm else "folded"
        typer.echo(
            f"{path}: ResNet-{plan.num_layers} DetectNet_v2 from {imported.source_format}, "
            f"classes {','.join(imported.classes)}, input {imported.input_hw[1]}x{imported.input_hw[0]}, "
            f"activation {imported.model.activation}, batch norm {batch_norm}, "
            f"{count_params(imported.model):,} parameters"
        )
