"""`peoplenet-retrain validate`: exit codes, printed problems, manifest writing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner

if TYPE_CHECKING:
    from conftest import DamagedDataset

from gpu_worker.cli import app
from peoplenet_contracts import DatasetManifest

runner = CliRunner()


def test_sample_is_valid_with_tables(sample_dir: Path) -> None:
    result = runner.invoke(app, ["validate", str(sample_dir), "--decode"])
    assert result.exit_code == 0, result.output
    assert "images" in result.output and "20" in result.output
    assert "person" in result.output and "57" in result.output
    assert "valid" in result.output
    assert not (sample_dir / "manifest.json").exists()


def test_damaged_copy_exits_2_listing_every_problem(damaged_sample: DamagedDataset) -> None:
    sample_copy, expected, known = damaged_sample
    classes = ",".join(sorted(known))
    result = runner.invoke(app, ["validate", str(sample_copy), "--decode", "--classes", classes, "--write-manifest"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    for location, text in expected.items():
        assert any(line.startswith(location + ": ") and text in line for line in lines), (location, result.output)
    assert "8 errors\n" in result.output and "1 warning\n" in result.output
    assert not (sample_copy / "manifest.json").exists()


def test_json_output_is_the_report(damaged_sample: DamagedDataset) -> None:
    result = runner.invoke(app, ["validate", str(damaged_sample.root), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["error_count"] == 6  # no decode, no --classes: truncation and unknown class pass
    assert "labels/000000000326.txt:1: field 6 (y1) is 'abc', not a number" in report["errors"]


def test_write_manifest(sample_copy: Path) -> None:
    result = runner.invoke(
        app, ["validate", str(sample_copy), "--write-manifest", "--dataset", "people", "--version", "v1"]
    )
    assert result.exit_code == 0, result.output
    manifest = DatasetManifest.from_json((sample_copy / "manifest.json").read_bytes())
    assert (manifest.dataset, manifest.version) == ("people", "v1")
    assert len(manifest.images) == len(manifest.labels) == 20
    for entry in [*manifest.images, *manifest.labels]:
        assert (sample_copy / entry.path).stat().st_size == entry.size
    assert manifest.class_counts["person"] == 57
    assert manifest.negative_images == 0
    assert sorted(p.name for p in sample_copy.iterdir()) == ["images", "labels", "manifest.json"]  # no temp file
    # Validating again ignores the manifest itself.
    assert runner.invoke(app, ["validate", str(sample_copy)]).exit_code == 0


def test_user_errors_exit_2_without_traceback(tmp_path: Path, sample_copy: Path) -> None:
    cases = [
        ([str(tmp_path / "missing")], "is not a folder"),
        ([str(sample_copy), "--classes", " , "], "--classes is empty"),
        ([str(sample_copy), "--write-manifest", "--version", "../x"], "--version '../x'"),
    ]
    for args, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "gpu_worker.cli", "validate", *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert message in " ".join(proc.stderr.split())  # rich wraps long lines
        assert "Traceback" not in proc.stderr
