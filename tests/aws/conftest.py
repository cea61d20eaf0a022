"""Fixtures: the template's resources on the moto server, with the trigger's and the CLI's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_stack import Stack, create_stack


@pytest.fixture
def stack(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    from lambdas.dataset_trigger import app
    from lambdas.dataset_trigger.environment import TriggerConfig

    created = create_stack(aws_endpoint)
    for name, value in {**created.lambda_env(), **created.cli_env(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PEOPLENET_CONFIG", raising=False)
    # Like a warm Lambda, the handler keeps its clients between invocations; tests reuse them while the
    # environment (same moto endpoint, same resource names after each reset) is the same.
    if app.runtime.cache_info().currsize and app.runtime().config != TriggerConfig.from_env():
        app.runtime.cache_clear()
    yield created
