from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from peoplenet_contracts import (
    SCHEMA_MODELS,
    BaseModelRef,
    DatasetManifest,
    EngineManifest,
    ModelPublished,
    RetrainJob,
)
from peoplenet_contracts.events import parse_event

SHA = "a" * 64


def test_every_contract_has_a_schema_version() -> None:
    for model in SCHEMA_MODELS:
        assert "schema_version" in model.model_fields, model.__name__


def test_job_round_trips_through_json() -> None:
    job = RetrainJob(
        job_id="j-1",
        dataset="shop",
        dataset_version="v1",
        dataset_prefix="datasets/shop/v1/",
        manifest_key="datasets/shop/v1/manifest.json",
        base_model=BaseModelRef.parse("file:peoplenet.tflite"),
    )
    again = RetrainJob.from_json(job.to_json())
    assert again == job
    assert str(again.base_model) == "file:peoplenet.tflite"


@pytest.mark.parametrize("text", ["", "production", "none", "version:20260101-abc", "channel:staging"])
def test_base_model_ref_parses(text: str) -> None:
    ref = BaseModelRef.parse(text)
    assert BaseModelRef.parse(str(ref)) == ref


def test_base_model_ref_refuses_unknown_kind() -> None:
    with pytest.raises(ValueError, match="not one of"):
        BaseModelRef.parse("s3:foo")


def test_manifest_refuses_escaping_paths() -> None:
    with pytest.raises(ValidationError, match="stay inside"):
        DatasetManifest(dataset="d", version="1", images=[{"path": "../etc/passwd", "size": 1}], labels=[])


def test_engine_manifest_checks_platform_and_batch_range() -> None:
    fields = dict(
        platform="sm87-trt8.5-aarch64",
        model_version="m1",
        builder="trtexec",
        tensorrt_version="8.5.2",
        compute_capability="8.7",
        precision="int8",
        input_name="input_1:0",
        input_dims=(3, 544, 960),
        min_batch=1,
        opt_batch=4,
        max_batch=8,
        output_names=["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"],
        source_model_sha256=SHA,
        engine_sha256=SHA,
    )
    assert EngineManifest(**fields).platform == "sm87-trt8.5-aarch64"
    with pytest.raises(ValidationError):
        EngineManifest(**{**fields, "platform": "jetson"})
    with pytest.raises(ValidationError, match="batch range"):
        EngineManifest(**{**fields, "opt_batch": 16})


def test_events_parse_by_type_and_carry_attributes() -> None:
    event = ModelPublished(
        job_id="j",
        model_version="m1",
        model_prefix="models/peoplenet/m1/",
        channel="production",
        gate_passed=True,
    )
    parsed = parse_event(event.to_json())
    assert isinstance(parsed, ModelPublished)
    assert parsed.attributes() == {
        "event_type": "ModelPublished",
        "model_version": "m1",
        "channel": "production",
        "job_id": "j",
    }


def test_schema_command_writes_every_schema(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpu_worker.cli", "schema", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{m.__name__}.schema.json" for m in SCHEMA_MODELS)
    schema = json.loads((tmp_path / "RetrainJob.schema.json").read_text())
    assert "job_id" in schema["properties"]
    assert result.stdout.count(".schema.json") == len(SCHEMA_MODELS)


def test_help_imports_neither_torch_nor_docker() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from gpu_worker.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'docker', 'onnx', 'onnxruntime') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
