"""`peoplenet-retrain submit DIR --dataset NAME`: validate locally, upload to S3, manifest last, wait for the job.

aws mode only: the bucket's notification starts the trigger Lambda, which validates again (on S3)
and queues the job. The job id is known in advance (it derives from the manifest's content), so
the command waits for that id to appear in the ledger, or for `_validation.json` if S3 disagrees.
Uploading again resumes: files already in S3 with the same size and MD5 are not sent twice.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gpu_worker.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from gpu_worker.adapters import Adapters
    from gpu_worker.ports.ledger import JobLedger, JobRecord
    from gpu_worker.ports.store import ObjectStore
    from peoplenet_contracts import DatasetManifest
    from peoplenet_contracts.kitti import ValidationReport

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MULTIPART_THRESHOLD = 8 * 1024 * 1024  # boto3's default: above it an ETag is not the MD5


@dataclass(frozen=True)
class UploadPlan:
    directory: Path
    prefix: str  # datasets/<name>/<version>/
    manifest: DatasetManifest
    manifest_bytes: bytes
    job_id: str


def check_options(dataset: str, version: str, base_model: str | None, backend: str | None) -> None:
    from peoplenet_contracts import BaseModelRef

    for option, value in (("--dataset", dataset), ("--version", version)):
        if not _NAME.match(value):
            raise UserError(
                f"{option} {value!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
    try:
        BaseModelRef.parse(base_model)
    except ValueError as exc:
        raise UserError(f"--base-model: {exc}") from exc
    if backend not in (None, "torch", "tao"):
        raise UserError(f"--backend {backend!r}: use torch or tao")


def prepare_upload(
    directory: Path, dataset: str, version: str, *, spec: str | None, base_model: str | None, backend: str | None
) -> tuple[UploadPlan | None, ValidationReport]:
    """Validate the folder; for a valid one, the manifest to write and the job id it will produce."""
    from gpu_worker.intake import content_digest
    from gpu_worker.pipeline.layout import dataset_prefix, job_id_for
    from peoplenet_contracts import TrainingBackend
    from peoplenet_contracts.kitti import LocalDatasetSource, build_manifest, validate_dataset

    if not directory.is_dir():
        raise UserError(f"{directory} is not a folder: give the dataset folder holding images/ and labels/")
    source = LocalDatasetSource(directory)
    try:
        report = validate_dataset(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot validate {directory}: {exc}") from exc
    if not report.ok:
        return None, report
    try:
        manifest = build_manifest(
            source,
            report,
            dataset,
            version,
            spec=spec,
            base_model=base_model,
            backend=TrainingBackend(backend) if backend else None,
        )
    except ValueError as exc:
        raise UserError(f"cannot build the manifest of {directory}: {exc}") from exc
    job_id = job_id_for(dataset, version, content_digest(manifest))
    plan = UploadPlan(directory, dataset_prefix(dataset, version), manifest, manifest.to_json().encode(), job_id)
    return plan, report


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _already_there(path: Path, size: int, existing: dict[str, tuple[int, str]], key: str) -> bool:
    if key not in existing:
        return False
    remote_size, etag = existing[key]
    if remote_size != size:
        return False
    # Only a single-part upload's ETag is the MD5; bigger files are sent again rather than trusted on size.
    return size <= _MULTIPART_THRESHOLD and etag.strip('"') == _md5(path)


def upload_dataset(plan: UploadPlan, store: ObjectStore, console: Console, *, threads: int = 8) -> None:
    """Images and labels concurrently (with a progress bar), then manifest.json: its arrival commits the upload."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from gpu_worker.intake import MANIFEST, REPORT, content_digest
    from gpu_worker.ports.exceptions import AdapterUnavailable
    from peoplenet_contracts import DatasetManifest

    manifest_key = plan.prefix + MANIFEST
    try:
        committed_raw: bytes | None = store.get_bytes(manifest_key)
    except FileNotFoundError:
        committed_raw = None
    if committed_raw is not None:
        try:
            same = content_digest(DatasetManifest.from_json(committed_raw)) == content_digest(plan.manifest)
        except ValueError:  # unreadable: certainly not this upload
            same = False
        if same:
            console.print(f"{store.uri(manifest_key)} holds this dataset already: nothing to upload")
            return
        raise UserError(
            f"{store.uri(manifest_key)} exists with other content: a committed dataset version is never "
            f"overwritten; choose another --version"
        )

    entries = [*plan.manifest.images, *plan.manifest.labels]
    try:
        existing = {o.key: (o.size, o.etag or "") for o in store.list_objects(plan.prefix)}
        store.delete(plan.prefix + REPORT)  # a rejection report of an earlier attempt would mislead the wait
    except AdapterUnavailable as exc:
        raise UserError(f"cannot reach the bucket: {exc}") from exc
    todo = [e for e in entries if not _already_there(plan.directory / e.path, e.size, existing, plan.prefix + e.path)]
    if len(todo) < len(entries):
        console.print(f"{len(entries) - len(todo)} files already uploaded (same size and MD5): skipped")
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("upload", total=sum(e.size for e in todo))
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="submit-upload") as pool:
            futures = {pool.submit(store.upload_file, plan.directory / e.path, plan.prefix + e.path): e for e in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                except (AdapterUnavailable, OSError) as exc:
                    for other in futures:
                        other.cancel()
                    raise UserError(
                        f"upload of {futures[future].path} failed: {exc}. Nothing is committed (manifest.json "
                        f"not written); run submit again to resume"
                    ) from exc
                progress.advance(task, futures[future].size)
    store.put_bytes(manifest_key, plan.manifest_bytes)
    console.print(f"committed {store.uri(manifest_key)} ({len(entries)} files)")


def wait_for_job(
    plan: UploadPlan, adapters: Adapters, console: Console, *, timeout_s: float, poll_s: float
) -> JobRecord | None:
    """The job's ledger record once the trigger queued it; None if it rejected the upload (report printed)."""
    import json

    from gpu_worker.intake import REPORT

    deadline = time.monotonic() + timeout_s
    with console.status(f"waiting for the trigger to queue job {plan.job_id}"):
        while True:
            try:
                record = adapters.ledger.get(plan.job_id)
                console.print(f"job [bold]{plan.job_id}[/] is {record.status}")
                return record
            except KeyError:
                pass
            try:
                report = json.loads(adapters.store.get_bytes(plan.prefix + REPORT))
            except FileNotFoundError:
                report = None
            if report is not None:
                problems = report.get("problems", [])
                console.print(f"[bold red]rejected[/] by the trigger ({len(problems)} problems):")
                for line in problems:
                    console.print(line, markup=False, highlight=False)
                return None
            if time.monotonic() > deadline:
                raise UserError(
                    f"no job {plan.job_id} after {timeout_s:.0f} s: the upload is committed, but the trigger has "
                    f"not queued it. Check the trigger function's logs and its dead-letter queue, then "
                    f"`peoplenet-retrain status {plan.job_id}`"
                )
            time.sleep(poll_s)


def follow_job(
    job_id: str, ledger: JobLedger, console: Console, *, poll_s: float, timeout_s: float | None = None
) -> bool:
    """Print status and stage transitions until the job ends; True when it succeeded (or is a candidate)."""
    from peoplenet_contracts import JobStatus

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    last_status = None
    while True:
        record = ledger.get(job_id)
        for name, stage in record.stages.items():
            if seen.get(str(name)) != str(stage.status):
                seen[str(name)] = str(stage.status)
                detail = f"  {stage.detail}" if stage.detail else ""
                console.print(f"  {name}: {stage.status}{detail}", markup=False, highlight=False)
        if record.status != last_status:
            last_status = record.status
            console.print(f"job {job_id}: {record.status}", markup=False, highlight=False)
        if record.status.is_terminal:
            if record.reason:
                console.print(f"reason: {record.reason}", markup=False, highlight=False)
            if record.model_version:
                console.print(f"model version: {record.model_version}", markup=False, highlight=False)
            return record.status in (JobStatus.SUCCEEDED, JobStatus.CANDIDATE)
        if deadline is not None and time.monotonic() > deadline:
            raise UserError(f"job {job_id} still {record.status} after {timeout_s:.0f} s; it keeps running")
        time.sleep(poll_s)


def register(app: typer.Typer) -> None:
    @app.command("submit")
    def submit(
        directory: Path = typer.Argument(..., help="Dataset folder holding images/ and labels/ (KITTI)"),
        dataset: str = typer.Option(..., "--dataset", help="Dataset name: letters, digits, '.', '_', '-'"),
        version: str | None = typer.Option(None, "--version", help="Dataset version (default: UTC time)"),
        spec: str | None = typer.Option(None, "--spec", help="Spec name under specs/ or a key in the bucket"),
        base_model: str | None = typer.Option(
            None, "--base-model", help="production (default), none, channel:NAME, version:V or file:KEY"
        ),
        backend: str | None = typer.Option(None, "--backend", help="torch or tao (default: the worker's)"),
        wait: bool = typer.Option(False, "--wait", help="Follow the job to its end, printing stage changes"),
        timeout: float = typer.Option(300.0, "--timeout", min=0.0, help="Seconds to wait for the job id (0: don't)"),
        job_timeout: float = typer.Option(0.0, "--job-timeout", min=0.0, help="With --wait: give up after (0: never)"),
        poll: float = typer.Option(2.0, "--poll", min=0.05, help="Seconds between ledger polls"),
        threads: int = typer.Option(8, "--threads", min=1, max=64, help="Concurrent uploads"),
    ) -> None:
        """Upload a dataset for retraining (aws mode). Exit 0 queued/succeeded, 1 job failed, 2 invalid/rejected."""
        from rich.console import Console

        from gpu_worker.adapters import build_adapters
        from gpu_worker.cli.commands.validate import print_report
        from gpu_worker.config import load_settings

        settings = load_settings()
        if settings.mode != "aws":
            raise UserError(
                f"submit uploads to S3 and needs PEOPLENET_MODE=aws. In local mode, copy the folder to "
                f"{settings.inbox_dir}/<dataset>/<version>/ (manifest.json last: `peoplenet-retrain validate DIR "
                f"--write-manifest`) while `peoplenet-retrain serve` runs"
            )
        tag = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        check_options(dataset, tag, base_model, backend)
        console = Console(soft_wrap=True)  # keys and URIs stay on one line, greppable
        plan, report = prepare_upload(directory, dataset, tag, spec=spec, base_model=base_model, backend=backend)
        if plan is None:
            print_report(report, console)
            console.print(f"[bold red]invalid:[/] {report.error_count} errors; nothing uploaded")
            raise typer.Exit(code=2)
        console.print(f"{directory}: valid ({report.images} images, {report.boxes} boxes)")
        adapters = build_adapters(settings)
        upload_dataset(plan, adapters.store, console, threads=threads)
        if timeout <= 0:
            console.print(f"job id (once the trigger queues it): {plan.job_id}")
            return
        record = wait_for_job(plan, adapters, console, timeout_s=timeout, poll_s=poll)
        if record is None:
            raise typer.Exit(code=2)
        if wait and not follow_job(plan.job_id, adapters.ledger, console, poll_s=poll, timeout_s=job_timeout or None):
            raise typer.Exit(code=1)
