"""`peoplenet-retrain tao check`: is this host ready for the TAO backend?"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    tao_app = typer.Typer(help="The TAO Toolkit backend (NVIDIA's containers through Docker).", no_args_is_help=True)

    @tao_app.command("check")
    def check() -> None:
        """Check Docker, the NVIDIA container runtime, the TAO images and the key; exit 1 when not ready."""
        from rich.console import Console
        from rich.table import Table

        from gpu_worker.config import load_settings
        from gpu_worker.tao.check import check_tao

        results = check_tao(load_settings().tao)
        table = Table("check", "ok", "detail", title="TAO backend", show_lines=False)
        for result in results:
            table.add_row(result.name, "[green]yes[/]" if result.ok else "[red]no[/]", result.detail)
        Console(width=200).print(table)
        ready = all(result.ok for result in results)
        typer.echo("ready" if ready else "not ready", err=not ready)
        raise typer.Exit(0 if ready else 1)

    app.add_typer(tao_app, name="tao")
