"""`peoplenet-retrain config show`: the effective configuration, secrets masked."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)

    @config_app.command("show")
    def show() -> None:
        """Print the effective configuration (env + TOML + defaults) as JSON; secrets masked."""
        from gpu_worker.config import config_file_path, load_settings

        settings = load_settings()
        source = config_file_path()
        typer.echo(f"# config file: {source if source else 'none'}; mode: {settings.mode}", err=True)
        typer.echo(settings.model_dump_json(indent=2))

    app.add_typer(config_app, name="config")
