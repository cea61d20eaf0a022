"""`peoplenet-retrain submit` and `status` in aws mode, against moto with the trigger running in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_stack import BUCKET, SAMPLE, Stack, TriggerPump, client, expected_job_id
from typer.testing import CliRunner, Result

from gpu_worker.cli import app
from gpu_worker.errors import UserError

runner = CliRunner()


def _keys(stack: Stack, prefix: str) -> dict[str, int]:
    listing = client("s3", stack.endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"][len(prefix) :]: item["Size"] for item in listing.get("Contents", [])}


def _submit(*args: str) -> Result:
    return runner.invoke(app, ["submit", *args, "--poll", "0.1", "--timeout", "30"])


def test_submit_uploads_commits_and_waits_for_the_job(stack: Stack) -> None:
    with TriggerPump(stack) as pump:
        result = _submit(str(SAMPLE), "--dataset", "people", "--version", "v7", "--base-model", "none")
    assert result.exit_code == 0, result.output
    job_id = expected_job_id(SAMPLE, "people", "v7", base_model="none")
    assert f"job {job_id} is QUEUED" in result.stdout
    assert not pump.stats.failures and not pump.stats.errors

    uploaded = _keys(stack, "datasets/people/v7/")
    local = {p.relative_to(SAMPLE).as_posix(): p.stat().st_size for p in SAMPLE.rglob("*") if p.parent != SAMPLE}
    assert {k: v for k, v in uploaded.items() if k != "manifest.json"} == local
    # The manifest is written last, so S3's notification (and the trigger) sees a complete dataset.
    assert "manifest.json" in uploaded

    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)
    assert (row["job_id"], row["status"], row["dataset"]) == (job_id, "QUEUED", "people/v7")
    detail = runner.invoke(app, ["status", job_id])
    assert detail.exit_code == 0 and job_id in detail.stdout and "QUEUED" in detail.stdout


def test_submitting_again_resumes_and_never_overwrites(stack: Stack, tmp_path: Path) -> None:
    with TriggerPump(stack):
        first = _submit(str(SAMPLE), "--dataset", "people", "--version", "v1")
        again = _submit(str(SAMPLE), "--dataset", "people", "--version", "v1")
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert "holds this dataset already" in again.stdout
    assert first.stdout.splitlines()[-1] == again.stdout.splitlines()[-1]
    assert again.stdout.splitlines()[-1].endswith("is QUEUED")
    assert len(stack.receive_all(stack.jobs_queue_url)) == 1

    changed = tmp_path / "changed"
    shutil.copytree(SAMPLE, changed)
    next(iter(sorted((changed / "labels").iterdir()))).write_text("")  # now a negative image
    result = runner.invoke(app, ["submit", str(changed), "--dataset", "people", "--version", "v1", "--timeout", "0"])
    assert isinstance(result.exception, UserError)
    assert "choose another --version" in str(result.exception)


def test_interrupted_upload_resumes_without_sending_files_twice(stack: Stack) -> None:
    s3 = client("s3", stack.endpoint)
    first = sorted((SAMPLE / "images").iterdir())[:5]
    for path in first:  # an earlier, interrupted submit
        s3.put_object(Bucket=BUCKET, Key=f"datasets/people/v2/images/{path.name}", Body=path.read_bytes())
    result = runner.invoke(app, ["submit", str(SAMPLE), "--dataset", "people", "--version", "v2", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert "5 files already uploaded" in result.stdout
    assert "manifest.json" in _keys(stack, "datasets/people/v2/")


def test_invalid_dataset_exits_2_and_uploads_nothing(stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(SAMPLE, broken)
    label = sorted((broken / "labels").iterdir())[0]
    label.write_text("person 0.00 0 0.00 x 1 2 3 0 0 0 0 0 0 0\n")
    result = _submit(str(broken), "--dataset", "people", "--version", "v3")
    assert result.exit_code == 2
    assert f"labels/{label.name}:1:" in result.stdout
    assert _keys(stack, "datasets/") == {}


def test_rejection_by_the_trigger_is_reported(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Local validation passes, S3 disagrees: the base model named in the manifest is malformed for the trigger.
    from gpu_worker.cli.commands import submit

    monkeypatch.setattr(submit, "check_options", lambda *args: None)
    with TriggerPump(stack):
        result = _submit(str(SAMPLE), "--dataset", "people", "--version", "v5", "--base-model", "somewhere")
    assert result.exit_code == 2, result.output
    assert "rejected by the trigger" in result.stdout
    assert "base_model" in result.stdout


def test_local_mode_points_at_the_inbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PEOPLENET_MODE", "local")
    monkeypatch.setenv("PEOPLENET_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["submit", str(SAMPLE), "--dataset", "people"])
    assert isinstance(result.exception, UserError)
    assert "PEOPLENET_MODE=aws" in str(result.exception) and "inbox" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "my set"], "--dataset"),
        (["--dataset", "ok", "--version", "../v1"], "--version"),
        (["--dataset", "ok", "--base-model", "somewhere"], "--base-model"),
        (["--dataset", "ok", "--backend", "tensorflow"], "--backend"),
    ],
)
def test_bad_options_are_user_errors(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PEOPLENET_MODE", "aws")
    result = runner.invoke(app, ["submit", str(SAMPLE), *args])
    assert isinstance(result.exception, UserError) and message in str(result.exception)
