"""How a container's end maps to errors (no Docker needed)."""

from __future__ import annotations

import pytest

from gpu_worker.errors import PermanentJobError
from gpu_worker.tao.errors import TaoOutOfMemory, TaoStopped, TaoTaskFailed, TaoTimeout, raise_for_outcome

GPU_OOM = [
    "2024-01-31 [TAO Toolkit] [ERROR] root: Ran out of GPU memory, please lower the batch size",
    "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor",
]


def test_outcomes() -> None:
    raise_for_outcome("train", "exited", 0, oom_killed=False, last_lines=[], timeout_s=10)  # success: no error
    with pytest.raises(TaoOutOfMemory, match="exit code 1"):
        raise_for_outcome("train", "exited", 1, oom_killed=False, last_lines=GPU_OOM, timeout_s=10)
    with pytest.raises(TaoOutOfMemory, match="exit code 137"):  # host OOM killer: no OOMKilled flag
        raise_for_outcome("train", "exited", 137, oom_killed=False, last_lines=[], timeout_s=10)
    with pytest.raises(TaoTaskFailed, match="exit code 255") as caught:
        raise_for_outcome("export", "exited", 255, oom_killed=False, last_lines=["Execution status: FAIL"],
                          timeout_s=10)  # fmt: skip
    assert not isinstance(caught.value, TaoOutOfMemory) and isinstance(caught.value, PermanentJobError)
    assert "  | Execution status: FAIL" in str(caught.value)
    with pytest.raises(TaoTimeout, match="hard timeout of 10 s"):  # our kill's 137 is not an OOM
        raise_for_outcome("train", "timeout", 137, oom_killed=False, last_lines=[], timeout_s=10)
    with pytest.raises(TaoStopped):
        raise_for_outcome("train", "stopped", 137, oom_killed=False, last_lines=[], timeout_s=10)
