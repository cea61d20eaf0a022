"""Atomic installs: a process killed mid-copy never leaves a half-written engine in the DeepStream folder."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gpu_worker.agent.install import SETS, InstalledSet, install_set, read_set


def state(version: str, data: bytes) -> InstalledSet:
    return InstalledSet(version, "sm87-trt8.5-aarch64", hashlib.sha256(data).hexdigest(), "fp16", time.time(), ())


def files_of(folder: Path, version: str, engine: bytes) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "peoplenet.engine").write_bytes(engine)
    (folder / "labels_peoplenet.txt").write_text("Person\nBag\nFace\n")
    (folder / "config_infer_primary_peoplenet.txt").write_text(f"[property]\n# {version}\n")
    return {
        name: folder / name
        for name in ("peoplenet.engine", "labels_peoplenet.txt", "config_infer_primary_peoplenet.txt")
    }


def test_manual_setup_is_kept_as_previous_set(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "peoplenet.engine").write_bytes(b"hand-copied engine")
    install_set(ds, files_of(tmp_path / "v1", "v1", b"engine v1"), state("v1", b"engine v1"))
    assert (ds / "peoplenet.engine").read_bytes() == b"engine v1" and (ds / "peoplenet.engine").is_symlink()
    previous = read_set(ds, ".previous")
    assert previous is not None and previous.model_version == "legacy"
    assert (ds / SETS / previous.name / "peoplenet.engine").read_bytes() == b"hand-copied engine"


def test_killed_mid_copy_keeps_the_old_set(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    old = b"old engine " * 1000
    install_set(ds, files_of(tmp_path / "v1", "v1", old), state("v1", old))
    # The new engine comes through a FIFO: the installer blocks mid-copy after the first half.
    new_files = files_of(tmp_path / "v2", "v2", b"")
    fifo = tmp_path / "engine.fifo"
    os.mkfifo(fifo)
    new_files["peoplenet.engine"] = fifo
    script = textwrap.dedent(
        f"""
        import hashlib, time
        from pathlib import Path
        from gpu_worker.agent.install import InstalledSet, install_set
        files = {{k: Path(v) for k, v in { ({k: str(v) for k, v in new_files.items()})!r}.items()}}
        state = InstalledSet("v2", "sm87-trt8.5-aarch64", "f" * 64, "fp16", time.time(), ())
        install_set(Path({str(ds)!r}), files, state)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    with fifo.open("wb") as writer:
        writer.write(b"N" * (1 << 20))  # half of a 2 MiB engine, then the installer dies
        writer.flush()
        deadline = time.monotonic() + 30
        staging = []
        while time.monotonic() < deadline and not staging:
            staging = [p for p in (ds / SETS).glob(".staging-*/.peoplenet.engine.partial") if p.stat().st_size]
            time.sleep(0.05)
        assert staging, "the installer never started copying"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert (ds / "peoplenet.engine").read_bytes() == old
    installed = read_set(ds)
    assert installed is not None and installed.model_version == "v1"
    # The next install cleans the leftover staging folder and completes.
    new = b"new engine"
    install_set(ds, files_of(tmp_path / "v3", "v3", new), state("v3", new))
    assert (ds / "peoplenet.engine").read_bytes() == new
    assert not list((ds / SETS).glob(".staging-*"))
    assert sorted(p.name.split("-")[0] for p in (ds / SETS).iterdir()) == ["v1", "v3"]
