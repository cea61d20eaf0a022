"""`peoplenet-retrain platform`: this host's engine platform key (GPU arch, TensorRT, CPU arch)."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("platform")
    def platform(
        as_json: bool = typer.Option(False, "--json", help="Print every detected fact as JSON"),
        gpu_index: int = typer.Option(0, "--gpu", help="Which GPU to describe"),
    ) -> None:
        """Print the platform key engines are filed under, e.g. sm87-trt8.5-aarch64."""
        from gpu_worker.engines.platform import detect_platform

        facts = detect_platform(gpu_index=gpu_index)
        if as_json:
            typer.echo(json.dumps(facts.to_dict(), indent=2))
        key = facts.platform_key
        if key is None:
            for reason in facts.missing():
                typer.echo(f"error: {reason}", err=True)
            typer.echo("This host cannot build or run TensorRT engines: it has no engine platform.", err=True)
            raise typer.Exit(1)
        if not as_json:
            typer.echo(key)
