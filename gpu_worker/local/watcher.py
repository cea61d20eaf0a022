"""`serve`: watch inbox/ with watchdog; each `<dataset>/<version>/manifest.json` that appears is taken in."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from gpu_worker.adapters import Adapters
from gpu_worker.intake import MANIFEST, IntakeResult
from gpu_worker.local.intake import intake_folder

log = logging.getLogger(__name__)
INTAKE_RECORD = ".intake.json"  # beside the manifest: this folder was taken in (survives restarts)


WATCHED_EVENTS = ("created", "modified", "closed", "moved")


def _complete_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def pending_folders(inbox: Path) -> list[Path]:
    """Folders with a manifest and no intake record yet (found at start-up or by --once)."""
    return sorted(p.parent for p in inbox.rglob(MANIFEST) if not (p.parent / INTAKE_RECORD).exists())


def take_in(folder: Path, adapters: Adapters) -> IntakeResult:
    result = intake_folder(folder, adapters)
    (folder / INTAKE_RECORD).write_text(json.dumps({"job_id": result.job_id, "message": result.message}) + "\n")
    log.info("%s: %s", folder, result.message, extra={"job_id": result.job_id})
    return result


def watch_inbox(
    inbox: Path,
    adapters: Adapters,
    stop: threading.Event,
    on_result: Callable[[IntakeResult], None] = lambda result: None,
) -> None:
    """Block until stop is set, taking in every dataset folder whose manifest.json appears."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    inbox.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = Path(str(getattr(event, "dest_path", "") or event.src_path))
            if event.is_directory or path.name != MANIFEST or event.event_type not in WATCHED_EVENTS:
                return
            # "created" fires when the file is opened, before it is written: wait for a complete manifest
            # (closed after writing, renamed into place, or already parseable where no close events exist).
            if event.event_type in ("created", "modified") and not _complete_json(path):
                return
            with lock:
                if not (path.parent / INTAKE_RECORD).exists():
                    on_result(take_in(path.parent, adapters))

    for folder in pending_folders(inbox):
        on_result(take_in(folder, adapters))
    observer = Observer()
    observer.schedule(Handler(), str(inbox), recursive=True)
    observer.start()
    try:
        stop.wait()
    finally:
        observer.stop()
        observer.join()
