"""Mirror a training folder's checkpoints into the store while training runs.

A worker killed mid-training (kill -9, lost spot instance) leaves its latest checkpoint in the store,
where the next worker finds it and resumes instead of starting over. Trainers write checkpoints
atomically (temp file + rename), so a file seen here is complete.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from gpu_worker.periodic import PeriodicTask
from gpu_worker.ports.store import ObjectStore


class CheckpointSync(PeriodicTask):
    def __init__(self, store: ObjectStore, local_dir: Path, prefix: str, interval_s: float = 2.0) -> None:
        super().__init__(interval_s, "checkpoint-sync")
        self.store = store
        self.local_dir = local_dir
        self.prefix = prefix
        self._seen: dict[Path, tuple[int, int]] = {}

    def restore(self) -> int:
        """Download checkpoints a previous worker left in the store; returns how many."""
        restored = 0
        for info in self.store.list_objects(self.prefix):
            target = self.local_dir / info.key[len(self.prefix) :]
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                self.store.download_file(info.key, target)
                restored += 1
            self._seen[target] = self._stamp(target)
        return restored

    def flush(self) -> None:
        if not self.local_dir.is_dir():
            return
        for path in sorted(self.local_dir.rglob("*")):
            if not path.is_file() or path.name.startswith((".", "tmp")) or path.suffix == ".tmp":
                continue
            stamp = self._stamp(path)
            if self._seen.get(path) != stamp:
                self.store.upload_file(path, self.prefix + path.relative_to(self.local_dir).as_posix())
                self._seen[path] = stamp

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size

    def tick(self) -> None:
        # A checkpoint may rotate away between listing and upload; the next tick catches up.
        with contextlib.suppress(FileNotFoundError):
            self.flush()

    def finish(self) -> None:
        self.flush()
