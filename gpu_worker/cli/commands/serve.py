"""`peoplenet-retrain serve`: the embedded trigger (watchdog on inbox/) with a worker in the same process."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        with_worker: bool = typer.Option(True, "--with-worker/--no-worker", help="Also run jobs in this process."),
        once: bool = typer.Option(False, "--once", help="Take in what is in the inbox, run it, then exit."),
        json_logs: bool = typer.Option(False, "--json-logs/--pretty-logs"),
    ) -> None:
        """Watch <data_dir>/inbox/: a `<dataset>/<version>/` folder whose manifest.json appears is queued."""
        import threading

        from gpu_worker.adapters import build_adapters
        from gpu_worker.cli.runtime import build_worker
        from gpu_worker.config import load_settings
        from gpu_worker.errors import UserError
        from gpu_worker.local.watcher import pending_folders, take_in, watch_inbox
        from gpu_worker.logs import configure_logging
        from gpu_worker.worker.shutdown import Shutdown

        configure_logging(json_logs)
        settings = load_settings()
        if settings.mode != "local":
            raise UserError("serve is the embedded (local) mode; in aws mode the Lambda is the trigger")
        adapters = build_adapters(settings)
        shutdown = Shutdown()
        shutdown.install_signal_handlers()
        typer.echo(f"inbox: {settings.inbox_dir}", err=True)
        if once:
            for folder in pending_folders(settings.inbox_dir):
                typer.echo(take_in(folder, adapters).message)
            if with_worker:
                build_worker(settings, adapters, shutdown).run(burst=True)
            return
        stop = threading.Event()
        watcher = threading.Thread(target=watch_inbox, args=(settings.inbox_dir, adapters, stop), daemon=True)
        watcher.start()
        try:
            if with_worker:
                build_worker(settings, adapters, shutdown).run()
            else:
                shutdown.wait(10**9)
        finally:
            stop.set()
            watcher.join(timeout=5)
