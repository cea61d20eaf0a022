"""`peoplenet-retrain tao check` against the test engine."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from gpu_worker.cli import app
from gpu_worker.config import TaoSettings
from gpu_worker.tao.check import check_tao

pytestmark = pytest.mark.docker


def test_ready_with_images_pulled_and_gpus_off(
    docker_engine: Any, tao_images: Any, monkeypatch: pytest.MonkeyPatch, tao_key: str
) -> None:
    monkeypatch.setenv("PEOPLENET_TAO__TRAIN_IMAGE", tao_images.train)
    monkeypatch.setenv("PEOPLENET_TAO__DEPLOY_IMAGE", tao_images.deploy)
    monkeypatch.setenv("PEOPLENET_TAO__USE_GPUS", "false")
    monkeypatch.setenv("PEOPLENET_TAO__KEY", tao_key)
    result = CliRunner().invoke(app, ["tao", "check"])
    assert result.exit_code == 0, result.output
    assert "ready" in result.output and tao_images.train in result.output and tao_key not in result.output


def test_not_ready_names_what_is_missing(docker_engine: Any, tao_images: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEOPLENET_TAO__TRAIN_IMAGE", tao_images.train)
    monkeypatch.setenv("PEOPLENET_TAO__USE_GPUS", "true")
    result = CliRunner().invoke(app, ["tao", "check"])
    assert result.exit_code == 1
    assert "not ready" in result.output and "nvidia-ctk runtime configure" in result.output
    assert "docker pull nvcr.io/nvidia/tao/tao-toolkit:5.0.0-deploy" in result.output

    results = {r.name: r for r in check_tao(TaoSettings(train_image=tao_images.train), docker_engine.client)}
    assert results["docker"].ok and results["train image"].ok and results["key"].ok
    assert not results["nvidia runtime"].ok and not results["deploy image"].ok


def test_docker_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    results = check_tao(TaoSettings(key=""))  # type: ignore[arg-type]
    assert [(r.name, r.ok) for r in results] == [("docker", False), ("key", False)]
    assert "cannot reach the Docker engine" in results[0].detail
