"""Helpers for pipeline and worker tests: a tiny spec, sample datasets in an inbox, a webhook sink."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpu_worker.adapters import Adapters, build_adapters
from gpu_worker.config import Settings
from gpu_worker.intake import IntakeResult
from gpu_worker.local.intake import intake_folder
from peoplenet_contracts.kitti import LocalDatasetSource, build_manifest, validate_dataset

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "coco-people"
TINY_SPEC_KEY = "specs/tiny.txt"


def tiny_spec(epochs: int = 3, checkpoint_interval: int = 1) -> str:
    """The CPU demo spec shrunk to 128x96 so a whole job takes seconds on two cores."""
    text = (REPO / "specs" / "demo_cpu.txt").read_text()
    replacements = {
        r"output_image_width: \d+": "output_image_width: 128",
        r"output_image_height: \d+": "output_image_height: 96",
        r"num_epochs: \d+": f"num_epochs: {epochs}",
        r"checkpoint_interval: \d+": f"checkpoint_interval: {checkpoint_interval}",
    }
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, value, text)
        assert count == 1, pattern
    return text


def settings_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PEOPLENET_MODE": "local",
        "PEOPLENET_DATA_DIR": str(data_dir),
        "PEOPLENET_QUEUE__VISIBILITY_TIMEOUT_S": "4",
        "PEOPLENET_QUEUE__HEARTBEAT_INTERVAL_S": "1",
        "PEOPLENET_QUEUE__MAX_RECEIVES": "3",
        "PEOPLENET_WORKER__RETRY_BACKOFF_S": "0",
        "PEOPLENET_WORKER__DEVICE": "cpu",
        "PEOPLENET_EXPORT__INT8": "false",
    }
    env.update(extra)
    return env


def make_settings(data_dir: Path, **extra: str) -> Settings:
    values = settings_env(data_dir, **extra)
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        return Settings()
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def submit_sample(
    adapters: Adapters, settings: Settings, version: str, *, drop: int = 0, spec: str = TINY_SPEC_KEY
) -> IntakeResult:
    """Copy the bundled sample (minus `drop` images) into the inbox as <version> and take it in."""
    if not adapters.store.exists(TINY_SPEC_KEY):
        adapters.store.put_text(TINY_SPEC_KEY, tiny_spec())
    folder = settings.inbox_dir / "people" / version
    for sub in ("images", "labels"):
        shutil.copytree(SAMPLE / sub, folder / sub)
    for image in sorted((folder / "images").iterdir())[:drop]:
        image.unlink()
        (folder / "labels" / f"{image.stem}.txt").unlink()
    source = LocalDatasetSource(folder)
    manifest = build_manifest(source, validate_dataset(source), "people", version, spec=spec, base_model="none")
    (folder / "manifest.json").write_text(manifest.to_json())
    return intake_folder(folder, adapters)


@pytest.fixture
def local_setup(tmp_path: Path) -> tuple[Settings, Adapters]:
    settings = make_settings(tmp_path / "data")
    return settings, build_adapters(settings)


class WebhookSink:
    """A local HTTP server collecting the events the LogNotifier posts."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def of_type(self, event_type: str) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("event_type") == event_type]


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.thread.start()
    yield sink
    sink.server.shutdown()


def start_worker(data_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """A real worker process (`peoplenet-retrain worker`), JSON logs on stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "gpu_worker.cli", "worker", "--json-logs", *args],
        env={**os.environ, **settings_env(data_dir, **env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
