"""TAO Toolkit containers through the Docker SDK: runner, spec rewriting, log parsing, engines.

`docker` is imported only inside the functions that talk to the engine.
"""

from __future__ import annotations

from gpu_worker.tao.command import WORKSPACE, ImageKind, Mount, MountPlan, TaoInvocation, TaoTask
from gpu_worker.tao.docker_env import docker_client
from gpu_worker.tao.engines import TaoEngine, gen_trt_engine, tao_converter
from gpu_worker.tao.errors import (
    DockerUnavailable,
    GpuUnavailable,
    TaoContainerError,
    TaoImageMissing,
    TaoOutOfMemory,
    TaoStopped,
    TaoTaskFailed,
    TaoTimeout,
)
from gpu_worker.tao.logparse import TaoLogParser, TaoProgress, parse_metrics
from gpu_worker.tao.runner import TaoRunner, TaoRunResult

__all__ = [
    "WORKSPACE",
    "DockerUnavailable",
    "GpuUnavailable",
    "ImageKind",
    "Mount",
    "MountPlan",
    "TaoContainerError",
    "TaoEngine",
    "TaoImageMissing",
    "TaoInvocation",
    "TaoLogParser",
    "TaoOutOfMemory",
    "TaoProgress",
    "TaoRunResult",
    "TaoRunner",
    "TaoStopped",
    "TaoTask",
    "TaoTaskFailed",
    "TaoTimeout",
    "docker_client",
    "gen_trt_engine",
    "parse_metrics",
    "tao_converter",
]
