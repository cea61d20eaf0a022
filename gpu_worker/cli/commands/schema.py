"""`peoplenet-retrain schema`: write the JSON Schemas of every shared contract."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("schema")
    def schema(
        out_dir: Path = typer.Option(Path("schemas"), "--out", "-o", help="Folder for <Name>.schema.json"),
    ) -> None:
        """Write the JSON Schema of every contract (job message, manifests, events)."""
        from peoplenet_contracts import SCHEMA_MODELS

        out_dir.mkdir(parents=True, exist_ok=True)
        for model in SCHEMA_MODELS:
            path = out_dir / f"{model.__name__}.schema.json"
            path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
            typer.echo(str(path))
