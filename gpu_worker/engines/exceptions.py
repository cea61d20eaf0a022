"""Errors of engine detection, building and distribution."""

from __future__ import annotations

from gpu_worker.errors import UserError


class PlatformUnavailable(UserError):
    """This host has no NVIDIA GPU or no TensorRT, so it has no engine platform."""


class EngineBuildError(Exception):
    """A builder ran and produced no usable engine (tool failed, unsupported model, wrong TensorRT)."""


class BuildRequestError(UserError):
    """The build request cannot be satisfied by the model given (e.g. INT8 without QDQ or cache)."""


class EngineIntegrityError(Exception):
    """An engine's bytes or manifest do not match (sha256, platform or model version): refused."""


class ModelFormatError(UserError):
    """A model file is not what it claims (unreadable ONNX, missing DetectNet_v2 outputs)."""
