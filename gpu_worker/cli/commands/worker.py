"""`peoplenet-retrain worker`: consume retraining jobs (SQLite or SQS) until stopped."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        burst: bool = typer.Option(False, "--burst", help="Exit when the queue is empty (scale-to-zero fleets)."),
        max_jobs: int | None = typer.Option(None, "--max-jobs", min=1, help="Exit after this many jobs."),
        json_logs: bool = typer.Option(True, "--json-logs/--pretty-logs", help="JSON lines (services) or rich."),
        spot: bool | None = typer.Option(None, "--spot/--no-spot", help="Poll the EC2 spot interruption notice."),
    ) -> None:
        """Run jobs from the queue: SIGTERM finishes or checkpoints the current stage, releases, exits 0."""
        from gpu_worker.adapters import build_adapters
        from gpu_worker.cli.runtime import build_worker
        from gpu_worker.config import load_settings
        from gpu_worker.logs import configure_logging
        from gpu_worker.worker.shutdown import Shutdown

        configure_logging(json_logs)
        settings = load_settings()
        shutdown = Shutdown()
        shutdown.install_signal_handlers()
        if spot if spot is not None else settings.worker.spot_interruption_polling:
            shutdown.start_spot_polling(settings.worker.metadata_endpoint)
        handled = build_worker(settings, build_adapters(settings), shutdown).run(burst=burst, max_jobs=max_jobs)
        typer.echo(
            f"worker exiting: {handled} job(s) handled" + (f"; {shutdown.reason}" if shutdown.reason else ""), err=True
        )
