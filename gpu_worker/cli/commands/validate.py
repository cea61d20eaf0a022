"""`peoplenet-retrain validate DIR`: check a KITTI dataset folder and optionally write its manifest."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gpu_worker.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from peoplenet_contracts.kitti import ValidationReport

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_classes(text: str | None) -> set[str] | None:
    """'person,bag' -> {'person', 'bag'}; None when not given."""
    if text is None:
        return None
    classes = {c.strip().lower() for c in text.split(",") if c.strip()}
    if not classes:
        raise UserError("--classes is empty: give class names separated by commas, e.g. --classes person,bag")
    if bad := sorted(c for c in classes if any(ch.isspace() for ch in c)):
        raise UserError(f"--classes: {bad[0]!r} holds a space; KITTI class names use '_' instead")
    return classes


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_report(report: ValidationReport, console: Console) -> None:
    from rich.table import Table

    summary = Table(title=f"Dataset {report.location}", show_header=False, title_justify="left")
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("images", str(report.images))
    summary.add_row("negative images (no objects)", str(report.negative_images))
    summary.add_row("boxes", str(report.boxes))
    summary.add_row("size", f"{report.total_bytes / 1e6:.2f} MB")
    summary.add_row("fully decoded", "yes" if report.decoded else "no (header only; --decode to decode)")
    console.print(summary)
    if report.boxes_per_class:
        classes = Table(title="Boxes per class", title_justify="left")
        classes.add_column("class")
        classes.add_column("boxes", justify="right")
        for name, count in report.boxes_per_class.items():
            classes.add_row(name, str(count))
        console.print(classes)
    for title, lines, total, style in (
        ("errors", report.errors, report.error_count, "bold red"),
        ("warnings", report.warnings, report.warning_count, "yellow"),
    ):
        if not total:
            continue
        console.print(f"[{style}]{total} {title if total > 1 else title[:-1]}[/]")
        for line in lines:  # plain text: paths may hold '[' which rich would read as markup
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if total > len(lines):
            console.print(f"... and {total - len(lines)} more {title}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        directory: Path = typer.Argument(..., help="Dataset folder holding images/ and labels/"),
        write_manifest: bool = typer.Option(
            False, "--write-manifest", help="Write DIR/manifest.json (last, atomically) when the dataset is valid"
        ),
        decode: bool = typer.Option(False, "--decode", help="Decode every image fully (slower; finds truncation)"),
        classes: str | None = typer.Option(
            None, "--classes", help="Known classes, comma-separated (e.g. person,bag): any other is an error"
        ),
        dataset: str | None = typer.Option(
            None, "--dataset", help="Dataset name for the manifest (default: the folder name)"
        ),
        version: str | None = typer.Option(
            None, "--version", help="Version for the manifest (default: UTC time, e.g. 20250101T120000Z)"
        ),
        tolerance: float = typer.Option(2.0, "--tolerance", min=0.0, help="Pixels a box may stick out of its image"),
        json_output: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables"),
    ) -> None:
        """Check a KITTI dataset folder: every problem as 'file:line: what'. Exit 0 valid, 2 invalid."""
        from rich.console import Console

        from peoplenet_contracts.kitti import MANIFEST_NAME, LocalDatasetSource, build_manifest, validate_dataset

        if not directory.is_dir():
            raise UserError(f"{directory} is not a folder: give the dataset folder holding images/ and labels/")
        known = parse_classes(classes)
        name = dataset or directory.resolve().name
        tag = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if write_manifest:
            for option, value in (("--dataset", name), ("--version", tag)):
                if not _NAME.match(value):
                    raise UserError(f"{option} {value!r}: use letters, digits, '.', '_' or '-', starting alnum")

        source = LocalDatasetSource(directory)
        try:
            report = validate_dataset(source, known_classes=known, decode=decode, tolerance=tolerance)
        except (OSError, ImportError, ValueError) as exc:
            raise UserError(f"cannot validate {directory}: {exc}") from exc

        console = Console()
        if json_output:
            typer.echo(report.to_json())
        else:
            print_report(report, console)
        if not report.ok:
            if not json_output:
                console.print(f"[bold red]invalid:[/] {report.error_count} errors; fix them and run validate again")
            raise typer.Exit(code=2)
        if write_manifest:
            try:
                manifest = build_manifest(source, report, dataset=name, version=tag)
            except ValueError as exc:
                raise UserError(f"cannot write the manifest: {exc}") from exc
            target = directory / MANIFEST_NAME
            write_atomically(target, manifest.to_json() + "\n")
            counts = f"{len(manifest.images)} images, {len(manifest.labels)} label files"
            typer.echo(f"wrote {target} ({counts})", err=json_output)
        elif not json_output:
            console.print("[bold green]valid[/]")
