"""Agents of a fleet on one store (local folder and S3 on moto): one builder per platform, verified installs."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

from engine_testkit import calls, facts, make_model_dir, make_tool, publish

from gpu_worker.agent import Agent, AgentConfig, SyncOutcome, read_set, rollback
from gpu_worker.engines.layout import build_lock_key, engine_key, engine_manifest_key
from gpu_worker.engines.lock import LockRecord
from gpu_worker.engines.trtexec import TrtexecBuilder
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import EngineManifest


def agent(store: ObjectStore, tmp_path: Path, name: str, platform_facts: object, **config: object) -> Agent:
    cfg = AgentConfig(
        deepstream_dir=tmp_path / name / "deepstream", work_dir=tmp_path / name / "work", owner=name,
        poll_interval_s=0.1, **config,  # type: ignore[arg-type]
    )  # fmt: skip
    f = platform_facts
    return Agent(store, f, TrtexecBuilder(f) if f.trtexec_path else None, cfg)  # type: ignore[attr-defined, arg-type]


def engine_bytes(deepstream_dir: Path) -> bytes:
    return (deepstream_dir / "peoplenet.engine").read_bytes()


def test_one_platform_builds_once_and_peers_pull(store: ObjectStore, tmp_path: Path) -> None:
    make_model_dir(tmp_path / "published" / "v1", "v1")
    publish(store, tmp_path / "published" / "v1", "v1")
    log = tmp_path / "orin-trtexec.jsonl"
    orin = facts("8.7", "8.5.2.2", "aarch64", trtexec=make_tool(tmp_path / "bin-orin", "trtexec", log, delay=1.0))
    agents = [agent(store, tmp_path, f"orin-{i}", orin) for i in range(2)]
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, agents[i].sync_once())) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    outcomes = sorted(str(r.engine_outcome) for r in results.values())  # type: ignore[attr-defined]
    assert outcomes == ["built", "downloaded"]
    assert all(r.outcome is SyncOutcome.INSTALLED for r in results.values())  # type: ignore[attr-defined]
    assert len(calls(log)) == 1  # exactly one build on this platform
    first, second = (tmp_path / f"orin-{i}" / "deepstream" for i in range(2))
    assert engine_bytes(first) == engine_bytes(second) == store.get_bytes(engine_key("v1", "sm87-trt8.5-aarch64"))
    assert not store.exists(build_lock_key("v1", "sm87-trt8.5-aarch64"))  # released
    config = (first / "config_infer_primary_peoplenet.txt").read_text()
    assert "model-engine-file=peoplenet.engine" in config and "num-detected-classes=3" in config
    assert (first / "labels_peoplenet.txt").read_text().splitlines() == ["Person", "Bag", "Face"]

    # A third agent of the same platform just pulls; one of another platform builds its own.
    assert agent(store, tmp_path, "orin-2", orin).sync_once().engine_outcome == "downloaded"
    dgpu_log = tmp_path / "dgpu-trtexec.jsonl"
    dgpu = facts(
        "8.6", "8.6.1.6", "x86_64", trtexec=make_tool(tmp_path / "bin-dgpu", "trtexec", dgpu_log, banner="8601")
    )
    result = agent(store, tmp_path, "a10", dgpu).sync_once()
    assert (result.outcome, result.engine_outcome) == (SyncOutcome.INSTALLED, "built")
    assert len(calls(dgpu_log)) == 1 and len(calls(log)) == 1
    built = EngineManifest.from_json(store.get_bytes(engine_manifest_key("v1", "sm86-trt8.6-x86_64")))
    assert built.platform == "sm86-trt8.6-x86_64" and built.tensorrt_version.startswith("8.6")
    # Nothing changed: the next sync is a no-op.
    assert agents[0].sync_once().outcome is SyncOutcome.UP_TO_DATE


def test_sha256_mismatch_is_refused_and_old_engine_stays(store: ObjectStore, tmp_path: Path) -> None:
    orin = facts(trtexec=make_tool(tmp_path / "bin", "trtexec", tmp_path / "log.jsonl"))
    make_model_dir(tmp_path / "pub" / "v1", "v1")
    publish(store, tmp_path / "pub" / "v1", "v1")
    host = agent(store, tmp_path, "host", orin)
    assert host.sync_once().outcome is SyncOutcome.INSTALLED
    ds = tmp_path / "host" / "deepstream"
    old = engine_bytes(ds)

    # v2: a peer's engine whose bytes were altered after engine.json was written.
    make_model_dir(tmp_path / "pub" / "v2", "v2")
    publish(store, tmp_path / "pub" / "v2", "v2")
    platform = "sm87-trt8.5-aarch64"
    peer = agent(store, tmp_path, "peer", orin)
    assert peer.sync_once().engine_outcome == "built"
    store.put_bytes(engine_key("v2", platform), b"tampered engine bytes")
    result = host.sync_once()
    assert result.outcome is SyncOutcome.REFUSED and "sha256" in result.message
    assert engine_bytes(ds) == old
    installed = read_set(ds)
    assert installed is not None and installed.model_version == "v1"
    assert hashlib.sha256(old).hexdigest() == installed.engine_sha256


def test_stale_lock_is_taken_over_and_live_lock_waits(store: ObjectStore, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    orin = facts(trtexec=make_tool(tmp_path / "bin", "trtexec", log))
    make_model_dir(tmp_path / "pub" / "v1", "v1")
    publish(store, tmp_path / "pub" / "v1", "v1")
    key = build_lock_key("v1", "sm87-trt8.5-aarch64")
    live = LockRecord(owner="busy-peer", host="other", acquired_at=time.time(), expires_at=time.time() + 600)
    store.put_bytes(key, live.to_bytes(), if_none_match=True)
    waiting = agent(store, tmp_path, "w", orin, build_wait_timeout_s=0.3).sync_once()
    assert waiting.outcome is SyncOutcome.WAITING and "busy-peer" in waiting.message and calls(log) == []

    dead = LockRecord(owner="dead-peer", host="other", acquired_at=time.time() - 2000, expires_at=time.time() - 1000)
    store.put_bytes(key, dead.to_bytes())
    result = agent(store, tmp_path, "t", orin).sync_once()
    assert (result.outcome, result.engine_outcome) == (SyncOutcome.INSTALLED, "built")
    assert len(calls(log)) == 1 and not store.exists(key)


def test_rollback_and_post_install_command(store: ObjectStore, tmp_path: Path) -> None:
    orin = facts(trtexec=make_tool(tmp_path / "bin", "trtexec", tmp_path / "log.jsonl"))
    marker = tmp_path / "restarted.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import json, os, sys\n"
        f"open({str(marker)!r}, 'a').write(json.dumps([os.environ['PEOPLENET_MODEL_VERSION'], "
        "os.environ['PEOPLENET_PLATFORM']]) + '\\n')\n"
    )
    import sys

    host = agent(store, tmp_path, "h", orin, post_install=f"{sys.executable} {hook}")
    for version in ("v1", "v2"):
        make_model_dir(tmp_path / "pub" / version, version)
        publish(store, tmp_path / "pub" / version, version)
        assert host.sync_once().post_install_rc == 0
    ds = tmp_path / "h" / "deepstream"
    assert [json.loads(line)[0] for line in marker.read_text().splitlines()] == ["v1", "v2"]
    v2_engine = engine_bytes(ds)
    back = rollback(ds)
    assert back.model_version == "v1" and engine_bytes(ds) != v2_engine
    assert engine_bytes(ds) == store.get_bytes(engine_key("v1", "sm87-trt8.5-aarch64"))
    assert rollback(ds).model_version == "v2"
