"""The trigger's deployment artefact: built by the SAM makefile target, free of torch/docker/Pillow, and working.

The artefact is built with `make build-DatasetTriggerFunction ARTIFACTS_DIR=...` (pip fetches its
requirements for python3.11 / x86_64), or taken from PEOPLENET_LAMBDA_ARTEFACT (`make template-check`
points it at `sam build`'s output). The handler then runs in a clean interpreter whose only
packages are the artefact and boto3 with its dependencies, as on the Lambda runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_stack import REPO_ROOT, SAMPLE, Stack, expected_job_id, sqs_event, upload_folder

pytestmark = pytest.mark.slow

FORBIDDEN = ("torch", "docker", "PIL", "numpy", "onnx", "onnxruntime", "cv2", "watchdog", "typer", "rich")
# What the Lambda runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
ALLOWED_GPU_WORKER = {"__init__.py", "config.py", "errors.py", "intake.py", "adapters", "ports", "pipeline"}


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("PEOPLENET_LAMBDA_ARTEFACT")
    if prebuilt:
        return REPO_ROOT / prebuilt
    if shutil.which("make") is None or shutil.which("python3.11") is None:
        pytest.skip("building the artefact needs make and python3.11 on PATH")
    out = tmp_path_factory.mktemp("artefact")
    build = subprocess.run(
        ["make", "-s", "build-DatasetTriggerFunction", f"ARTIFACTS_DIR={out}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def test_artefact_holds_no_heavy_or_runtime_packages(artefact: Path) -> None:
    top = {p.name for p in artefact.iterdir()}
    assert {"lambdas", "peoplenet_contracts", "gpu_worker", "aws_lambda_powertools", "pydantic"} <= top
    assert not [name for name in top if name.split("-")[0] in FORBIDDEN], sorted(top)
    assert not {"boto3", "botocore", "s3transfer"} & top  # the runtime's, never a second copy
    assert {p.name for p in (artefact / "gpu_worker").iterdir()} <= ALLOWED_GPU_WORKER | {"__pycache__"}
    assert {p.name for p in (artefact / "gpu_worker" / "pipeline").iterdir()} <= {"__init__.py", "layout.py"}
    size = sum(p.stat().st_size for p in artefact.rglob("*") if p.is_file())
    assert size < 60e6, f"{size / 1e6:.0f} MB unzipped"
    assert not list(artefact.rglob("*.tflite")) and not list((artefact / "lambdas").rglob("test*"))


def _runtime_site(tmp_path: Path) -> Path:
    """boto3 and its dependencies, as the Lambda runtime provides them, and nothing else."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site / name)
    return runtime


_HANDLER_RUN = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from lambdas.dataset_trigger import app

class Context:
    function_name = "pnr-dataset-trigger"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pnr-dataset-trigger"
    aws_request_id = "5b6b4b40-0000-4000-8000-000000000000"
    def get_remaining_time_in_millis(self):
        return 55000

response = app.lambda_handler(json.load(sys.stdin), Context())
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[3].split(",")))
print(json.dumps({"response": response, "heavy": heavy}))
"""


def test_handler_runs_from_the_artefact_alone(artefact: Path, stack: Stack, tmp_path: Path) -> None:
    upload_folder(stack, SAMPLE, "coco-people", "v1")
    messages = stack.receive_all(stack.trigger_queue_url)  # the s3:TestEvent and the manifest's notification
    assert len(messages) == 2
    event = sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:pnr-trigger")
    env = {
        **stack.lambda_env(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    run = subprocess.run(
        # -I: no user site, no PYTHON* variables; -S: no site-packages. Only the two folders are importable.
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _HANDLER_RUN,
            str(artefact),
            str(_runtime_site(tmp_path)),
            ",".join(FORBIDDEN),
        ],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"response": {"batchItemFailures": []}, "heavy": []}
    (job,) = stack.receive_all(stack.jobs_queue_url)
    assert json.loads(job["Body"])["job_id"] == expected_job_id(SAMPLE, "coco-people", "v1")
