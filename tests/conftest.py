"""Shared fixtures: paths to ../shared, a moto server on 127.0.0.1, AWS clients pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PEOPLENET_SHARED", REPO_ROOT.parent / "shared"))
COCO_KITTI = SHARED / "data" / "coco128-kitti"
PEOPLENET_TFLITE = SHARED / "models" / "peoplenet" / "resnet34_peoplenet_int8_mod_dynamic_range_quant.tflite"


@pytest.fixture(scope="session")
def coco_kitti() -> Path:
    """../shared/data/coco128-kitti (train/, val/), or skip."""
    if not (COCO_KITTI / "train" / "images").is_dir():
        pytest.skip(f"needs ../shared data: {COCO_KITTI} is absent")
    return COCO_KITTI


@pytest.fixture(scope="session")
def peoplenet_tflite() -> Path:
    """The real PeopleNet TFLite weights, or skip."""
    if not PEOPLENET_TFLITE.is_file():
        pytest.skip(f"needs ../shared models: {PEOPLENET_TFLITE} is absent")
    return PEOPLENET_TFLITE


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (free port) for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_endpoint(moto_server: str) -> Iterator[str]:
    """The moto endpoint, reset to an empty account before each test."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    yield moto_server
