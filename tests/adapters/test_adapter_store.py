"""One behavioural suite for the object store port, run on the local folder and on S3 (moto)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from adapter_support import increment_counter

from gpu_worker.adapters import LocalFolderStore
from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectStore


def test_put_get_head_round_trip(store: ObjectStore) -> None:
    info = store.put_bytes("runs/job-1/train/model.bin", b"\x00\x01weights")
    assert info.key == "runs/job-1/train/model.bin"
    assert info.size == 9
    assert store.get_bytes("runs/job-1/train/model.bin") == b"\x00\x01weights"
    assert store.head("runs/job-1/train/model.bin") == info
    assert store.exists("runs/job-1/train/model.bin")
    store.put_text("notes.txt", "héllo")
    assert store.get_text("notes.txt") == "héllo"


def test_list_is_recursive_sorted_and_filtered_by_prefix(store: ObjectStore) -> None:
    for key in ["b/2.txt", "a/2/x.txt", "a/10.txt", "ab.txt", "a/1.txt"]:
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list_objects()] == ["a/1.txt", "a/10.txt", "a/2/x.txt", "ab.txt", "b/2.txt"]
    assert [i.key for i in store.list_objects("a/")] == ["a/1.txt", "a/10.txt", "a/2/x.txt"]
    assert [i.key for i in store.list_objects("a")] == ["a/1.txt", "a/10.txt", "a/2/x.txt", "ab.txt"]
    assert [i.key for i in store.list_objects("a/1")] == ["a/1.txt", "a/10.txt"]
    assert list(store.list_objects("missing/")) == []
    listed = {i.key: i for i in store.list_objects("b/")}
    assert listed["b/2.txt"] == store.head("b/2.txt")


def test_missing_keys_raise_file_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.get_bytes("nope/missing.json")
    with pytest.raises(FileNotFoundError):
        store.head("nope/missing.json")
    with pytest.raises(FileNotFoundError):
        store.download_file("nope/missing.json", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
    assert not store.exists("nope/missing.json")


def test_delete_removes_and_tolerates_missing(store: ObjectStore) -> None:
    store.put_bytes("a/b.txt", b"x")
    store.delete("a/b.txt")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("a/b.txt")
    store.delete("a/b.txt")  # deleting twice is fine
    assert list(store.list_objects("a/")) == []


def test_if_none_match_refuses_an_existing_key(store: ObjectStore) -> None:
    store.put_bytes("models/v1/_PUBLISHED", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("models/v1/_PUBLISHED", b"second", if_none_match=True)
    assert store.get_bytes("models/v1/_PUBLISHED") == b"first"


def test_if_match_refuses_a_stale_etag(store: ObjectStore) -> None:
    first = store.put_text("channels/prod.json", '{"v": 1}')
    second = store.put_text("channels/prod.json", '{"v": 2}', if_match=first.etag)
    assert second.etag != first.etag
    with pytest.raises(PreconditionFailed):
        store.put_text("channels/prod.json", '{"v": 3}', if_match=first.etag)
    assert store.get_text("channels/prod.json") == '{"v": 2}'
    store.delete("channels/prod.json")
    with pytest.raises(PreconditionFailed):  # gone since it was read
        store.put_text("channels/prod.json", '{"v": 4}', if_match=second.etag)


def test_rewrites_of_equal_size_get_new_etags(store: ObjectStore) -> None:
    etags = {store.put_bytes("k", bytes([n]) * 8).etag for n in range(5)}
    assert len(etags) == 5


def test_upload_dir_download_prefix_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {"model.onnx": os.urandom(3000), "labels.txt": b"person\nbag\nface\n", "calib/cal.bin": b"\x01\x02"}
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    infos = store.upload_dir(src, "models/peoplenet/v7/")
    assert [i.key for i in infos] == [
        "models/peoplenet/v7/calib/cal.bin",
        "models/peoplenet/v7/labels.txt",
        "models/peoplenet/v7/model.onnx",
    ]
    assert infos[2].size == 3000
    paths = store.download_prefix("models/peoplenet/v7/", tmp_path / "dst")
    assert sorted(p.relative_to(tmp_path / "dst").as_posix() for p in paths) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / "dst" / name).read_bytes() == data


@pytest.mark.parametrize("key", ["../escape.txt", "/etc/passwd", "a/../../b", "a//b", "./a", "", "a\\b"])
def test_keys_cannot_escape_the_root(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.get_bytes(key)


def test_uri_names_the_location(store: ObjectStore) -> None:
    uri = store.uri("datasets/d1/manifest.json")
    assert uri.endswith("/datasets/d1/manifest.json")
    assert uri.startswith(("file:///", "s3://models-bucket/"))


def test_local_store_refuses_symlinks_leading_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    store = LocalFolderStore(tmp_path / "root")
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        store.get_bytes("link/secret.txt")
    assert list(store.list_objects()) == []


def test_local_conditional_writes_are_race_safe_across_processes(tmp_path: Path) -> None:
    """Four processes compare-and-swap one counter 25 times each: no increment is lost."""
    store = LocalFolderStore(tmp_path / "root")
    store.put_text("counter", "0")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    workers = [ctx.Process(target=increment_counter, args=(str(store.root), "counter", 25, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert store.get_text("counter") == "100"
    assert [i.key for i in store.list_objects()] == ["counter"]  # no temp files left in the key space
