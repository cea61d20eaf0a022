"""`peoplenet-retrain demo`: retrain on the bundled sample, export, publish locally, print where it all went."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Embedded data folder (default: config)."),
    ) -> None:
        """Run one job end to end on the embedded default (local folder + SQLite), CPU demo spec."""
        import time

        from rich.console import Console

        from gpu_worker.adapters import build_adapters
        from gpu_worker.cli.runtime import build_worker
        from gpu_worker.config import load_settings
        from gpu_worker.errors import UserError
        from gpu_worker.local.demo import demo_succeeded, drop_sample_into_inbox, summarise
        from gpu_worker.local.watcher import take_in
        from gpu_worker.logs import configure_logging
        from gpu_worker.worker.shutdown import Shutdown

        configure_logging(json_logs=False)
        settings = load_settings(**({"data_dir": data_dir} if data_dir else {}))
        if settings.mode != "local":
            raise UserError("the demo runs on the embedded default: unset PEOPLENET_MODE or set it to 'local'")
        console = Console()
        adapters = build_adapters(settings)
        started = time.monotonic()
        folder = drop_sample_into_inbox(settings.inbox_dir)
        console.print(f"sample dataset dropped into [bold]{folder}[/] (manifest.json written last)")
        intake = take_in(folder, adapters)
        console.print(intake.message)
        if intake.job_id is None:
            raise UserError(f"the sample dataset was rejected: {intake.message}")
        shutdown = Shutdown()
        shutdown.install_signal_handlers()
        build_worker(settings, adapters, shutdown).run(burst=True)
        summary = summarise(adapters, intake)
        console.rule("demo result")
        console.print(
            f"job:           {summary.job_id} ({summary.status})"
            + ("" if summary.queued_now else "  [dim]already done earlier: no second training[/]")
        )
        console.print(f"model version: {summary.model_version or '-'}")
        for name, value in sorted(summary.metrics.items()):
            if name == "mAP" or name.startswith("AP/"):  # the rest is in metrics.json and the report
                console.print(f"  {name:<12} {value:.4f}")
        console.print(f"model folder:  {summary.model_folder or '-'}")
        console.print(f"run report:    {summary.report or '-'}")
        console.print(f"engine:        {summary.engine}")
        if summary.reason:
            console.print(f"note:          {summary.reason}")
        console.print(f"data folder:   {settings.data_dir.resolve()}  (store/, state.sqlite, inbox/)")
        console.print(f"wall time:     {time.monotonic() - started:.0f} s")
        if not demo_succeeded(summary):
            raise UserError(f"the demo job ended {summary.status}: {summary.reason}")
