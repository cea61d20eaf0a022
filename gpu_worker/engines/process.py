"""Run a builder tool as a child process: capture its output, enforce a timeout, explain failures."""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

from gpu_worker.engines.exceptions import EngineBuildError

TAIL_LINES = 40


def run_tool(argv: list[str], *, timeout_s: float, cwd: Path | None = None) -> tuple[str, ...]:
    """Run argv to completion; return the last lines of its output, or raise EngineBuildError."""
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EngineBuildError(f"{argv[0]} is not installed or not executable") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineBuildError(f"{Path(argv[0]).name} did not finish within {timeout_s:.0f} s") from exc
    tail = tuple(deque(result.stdout.splitlines(), maxlen=TAIL_LINES))
    if result.returncode != 0:
        raise EngineBuildError(f"{Path(argv[0]).name} exited with code {result.returncode}:\n" + "\n".join(tail[-15:]))
    return tail
