"""`peoplenet-retrain demo`: one whole job on the embedded default, from the bundled sample photos."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.adapters import Adapters
from gpu_worker.errors import UserError
from gpu_worker.intake import MANIFEST, IntakeResult
from gpu_worker.pipeline.layout import model_prefix, stage_prefix
from peoplenet_contracts import JobStatus
from peoplenet_contracts.kitti import LocalDatasetSource, validate_dataset
from peoplenet_contracts.kitti.manifest import build_manifest

SAMPLE_NAME = "coco-people"
SAMPLE_VERSION = "v1"
DEMO_SPEC = "demo_cpu.txt"


def sample_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "samples" / SAMPLE_NAME, here.parents[1] / "_samples" / SAMPLE_NAME):
        if (candidate / "images").is_dir():
            return candidate
    raise UserError("the bundled sample dataset (samples/coco-people) is missing from this installation")


def drop_sample_into_inbox(inbox: Path) -> Path:
    """Copy the sample as inbox/<name>/<version>/ and write its manifest last, as any uploader must."""
    folder = inbox / SAMPLE_NAME / SAMPLE_VERSION
    source = sample_dir()
    for sub in ("images", "labels"):
        shutil.copytree(source / sub, folder / sub, dirs_exist_ok=True)
    if not (folder / MANIFEST).exists():
        local = LocalDatasetSource(folder)
        report = validate_dataset(local)
        manifest = build_manifest(local, report, SAMPLE_NAME, SAMPLE_VERSION, spec=DEMO_SPEC, base_model="none")
        tmp = folder / f".{MANIFEST}.tmp"
        tmp.write_text(manifest.to_json())
        tmp.replace(folder / MANIFEST)
    return folder


@dataclass(frozen=True)
class DemoSummary:
    job_id: str
    status: str
    model_version: str | None
    metrics: dict[str, float]
    report: str | None
    model_folder: str | None
    engine: str
    reason: str | None
    queued_now: bool


def summarise(adapters: Adapters, intake: IntakeResult) -> DemoSummary:
    assert intake.job_id is not None
    record = adapters.ledger.get(intake.job_id)
    store = adapters.store
    metrics: dict[str, float] = {}
    report = folder = None
    if record.model_version:
        prefix = model_prefix(record.model_version)
        metrics = json.loads(store.get_text(prefix + "metrics.json"))
        report = store.uri(prefix + "report.html")
        folder = store.uri(prefix + "manifest.json").removesuffix("manifest.json")
    engine = "not reached"
    try:
        status = json.loads(store.get_text(stage_prefix(intake.job_id, "build_engine") + "engine_status.json"))
        engine = status.get("message", engine)
    except FileNotFoundError:
        pass
    return DemoSummary(
        job_id=intake.job_id,
        status=str(record.status),
        model_version=record.model_version,
        metrics=metrics,
        report=report,
        model_folder=folder,
        engine=engine,
        reason=record.reason,
        queued_now=intake.queued,
    )


def demo_succeeded(summary: DemoSummary) -> bool:
    return summary.status in (JobStatus.SUCCEEDED, JobStatus.CANDIDATE)
