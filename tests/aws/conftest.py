"""Fixtures: the template's resources on the moto server, with the trigger's and the CLI's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_stack import Stack, create_stack


@pytest.fixture
def stack(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    from lambdas.dataset_trigger import app

    created = create_stack(aws_endpoint)
    for name, value in {**created.lambda_env(), **created.cli_env(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PEOPLENET_CONFIG", raising=False)
    app.runtime.cache_clear()  # the handler builds its clients once per "execution environment"
    yield created
    app.runtime.cache_clear()
