"""Pick the builder this host can use, best first: TensorRT Python API, trtexec, tao-converter, TAO Deploy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_worker.engines.base import EngineBuilder
from gpu_worker.engines.platform import PlatformFacts, major_minor

if TYPE_CHECKING:
    from gpu_worker.config import TaoSettings


def select_builder(
    facts: PlatformFacts, model_format: str = ".onnx", tao: TaoSettings | None = None
) -> EngineBuilder | None:
    """A builder for model_format ('.onnx' or '.etlt') on this host, or None when there is none.

    None whenever the host has no platform key (no GPU or no TensorRT): an engine must be built
    where it will run.
    """
    if facts.platform_key is None:
        return None
    if model_format == ".onnx":
        if facts.tensorrt_python:
            from gpu_worker.engines.tensorrt_api import TensorRTBuilder

            return TensorRTBuilder(facts)
        if facts.trtexec_path:
            from gpu_worker.engines.trtexec import TrtexecBuilder

            return TrtexecBuilder(facts)
    if model_format == ".etlt" and facts.tao_converter_path:
        from gpu_worker.engines.tao_converter import TaoConverterBuilder

        return TaoConverterBuilder(facts)
    return _tao_deploy(facts, tao)


def _tao_deploy(facts: PlatformFacts, tao: TaoSettings | None) -> EngineBuilder | None:
    if tao is None or not facts.docker_path:
        return None
    from gpu_worker.engines.tao_deploy import KNOWN_DEPLOY_TENSORRT, TaoDeployBuilder

    container_trt = KNOWN_DEPLOY_TENSORRT.get(tao.deploy_image)
    if container_trt is None or major_minor(container_trt) != facts.tensorrt_major_minor:
        return None  # its engine would not load on this host
    return TaoDeployBuilder(facts, tao, container_trt)
