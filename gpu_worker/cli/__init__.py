"""`peoplenet-retrain` command line.

Every module in `gpu_worker.cli.commands` exposes `register(app)`; they are discovered here so that
commands stay in small files. Command modules import heavy libraries (torch, docker) inside the
command function, never at module level, so `--help` stays fast and light.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

from gpu_worker.config import ConfigError
from gpu_worker.errors import UserError

app = typer.Typer(
    name="peoplenet-retrain",
    help="Retrain, export and deploy NVIDIA PeopleNet (DetectNet_v2) for DeepStream fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register_commands() -> None:
    from gpu_worker.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except (UserError, ConfigError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
