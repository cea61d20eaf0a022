"""The embedded trigger: watchdog on inbox/, rejection reports, and the spot-notice shutdown path."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gpu_worker.adapters import build_adapters
from gpu_worker.local.watcher import watch_inbox
from gpu_worker.worker.shutdown import Shutdown, spot_interruption_notice
from peoplenet_contracts import JobStatus, RetrainJob
from peoplenet_contracts.kitti import LocalDatasetSource, build_manifest, validate_dataset
from tests.pipeline.conftest import SAMPLE, make_settings


def _drop(folder: Path, *, break_label: bool = False) -> None:
    """Write a dataset like an uploader would: files first, manifest.json last."""
    for sub in ("images", "labels"):
        shutil.copytree(SAMPLE / sub, folder / sub)
    source = LocalDatasetSource(folder)
    manifest = build_manifest(source, validate_dataset(source), "people", folder.name, base_model="none")
    if break_label:
        label = sorted((folder / "labels").iterdir())[0]
        label.write_text("person 0 0 0 10 10 5 20 0 0 0 0 0 0 0\n")  # x2 < x1 on line 1
    (folder / "manifest.json").write_text(manifest.to_json())


def _wait(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_watcher_queues_a_valid_dataset_and_rejects_a_bad_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    adapters = build_adapters(settings)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_inbox, args=(settings.inbox_dir, adapters, stop), daemon=True)
    watcher.start()
    try:
        time.sleep(0.5)
        _drop(settings.inbox_dir / "people" / "good")
        _wait(lambda: adapters.queue.approximate_depth() == 1)
        bad = settings.inbox_dir / "people" / "bad"
        _drop(bad, break_label=True)
        _wait(lambda: (bad / "_validation.json").exists())
    finally:
        stop.set()
        watcher.join(timeout=10)

    message = adapters.queue.receive()
    assert message is not None
    job = RetrainJob.from_json(message.body)
    assert job.dataset_version == "good" and adapters.ledger.get(job.job_id).status is JobStatus.QUEUED
    assert adapters.store.exists(job.manifest_key)  # copied into the store, manifest included
    report = json.loads((bad / "_validation.json").read_text())
    assert report["ok"] is False and any(":1:" in problem for problem in report["problems"])
    assert [r.dataset for r in adapters.ledger.list_jobs()] == ["people/good"]


def test_a_spot_interruption_notice_requests_a_stop() -> None:
    class Metadata(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self._reply(b"token")

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != "token":
                self.send_response(401)
                self.end_headers()
                return
            self._reply(b'{"action": "terminate", "time": "2026-11-26T12:00:00Z"}')

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert spot_interruption_notice("http://127.0.0.1:9") is None  # nothing listening: no notice
        shutdown = Shutdown()
        shutdown.start_spot_polling(endpoint, interval_s=0.05)
        assert shutdown.wait(10)
        assert shutdown.reason and "terminate" in shutdown.reason
    finally:
        server.shutdown()
