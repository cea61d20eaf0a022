"""`peoplenet-retrain spec check`, run as a user runs it (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}  # keep rich from wrapping the error line
    return subprocess.run(
        [sys.executable, "-m", "gpu_worker.cli", "spec", "check", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_check_prints_what_the_spec_sets() -> None:
    result = _run("specs/peoplenet_train.txt")
    assert result.returncode == 0, result.stderr
    assert "valid experiment spec" in result.stdout
    assert "0:person, 1:bag, 2:face" in result.stdout
    assert "960x544" in result.stdout
    assert "resnet34, all_projections" in result.stdout
    assert "/workspace/data/train" in result.stdout


def test_check_recognises_a_dataset_convert_spec() -> None:
    result = _run("specs/dataset_convert.txt")
    assert result.returncode == 0, result.stderr
    assert "valid dataset_convert spec" in result.stdout
    assert "val_split 10%" in result.stdout


def test_check_exits_2_with_file_line_col(tmp_path: Path) -> None:
    spec = tmp_path / "bad.txt"
    spec.write_text('model_config {\n  arch: "resnet"\n  num_layer: 18\n}\n')
    result = _run(str(spec))
    assert result.returncode == 2
    assert f"{spec}:3:3:" in result.stderr
    assert "num_layer" in result.stderr
    assert "Traceback" not in result.stderr
