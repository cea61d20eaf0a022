"""`peoplenet-retrain status [JOB_ID]`: jobs and their stages, from the ledger (SQLite or DynamoDB)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        job_id: str | None = typer.Argument(None, help="One job in detail; omit for the newest jobs."),
        limit: int = typer.Option(20, "--limit", "-n", min=1),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List jobs (newest first) or show one job's stages."""
        import json

        from rich.console import Console
        from rich.table import Table

        from gpu_worker.adapters import build_adapters
        from gpu_worker.config import load_settings
        from gpu_worker.errors import UserError

        ledger = build_adapters(load_settings()).ledger
        console = Console()
        if job_id is None:
            records = ledger.list_jobs(limit=limit)
            if as_json:
                typer.echo(json.dumps([_summary(r) for r in records], indent=2, default=str))
                return
            table = Table("job", "status", "dataset", "model version", "updated", "reason")
            for r in records:
                table.add_row(
                    r.job_id,
                    str(r.status),
                    r.dataset,
                    r.model_version or "",
                    f"{r.updated_at:%Y-%m-%d %H:%M:%S}",
                    (r.reason or "")[:80],
                )
            console.print(table if records else "no jobs yet")
            return
        try:
            record = ledger.get(job_id)
        except KeyError as exc:
            raise UserError(f"no job {job_id!r} in the ledger") from exc
        if as_json:
            typer.echo(
                json.dumps(
                    _summary(record) | {"stages": {str(k): vars(v) for k, v in record.stages.items()}},
                    indent=2,
                    default=str,
                )
            )
            return
        console.print(f"[bold]{record.job_id}[/]  {record.status}  {record.dataset}  attempts={record.attempts}")
        if record.reason:
            console.print(f"reason: {record.reason}")
        if record.model_version:
            console.print(f"model version: {record.model_version}")
        table = Table("stage", "status", "started", "finished", "detail")
        for stage in record.stages.values():
            table.add_row(
                str(stage.name),
                str(stage.status),
                _time(stage.started_at),
                _time(stage.finished_at),
                stage.detail or "",
            )
        console.print(table)


def _time(value: object) -> str:
    return f"{value:%H:%M:%S}" if value is not None else ""


def _summary(record: object) -> dict[str, object]:
    keys = ("job_id", "status", "dataset", "model_version", "reason", "attempts", "created_at", "updated_at")
    return {key: getattr(record, key) for key in keys}
