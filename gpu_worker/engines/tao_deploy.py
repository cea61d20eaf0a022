"""Engine builder on TAO Deploy's `detectnet_v2 gen_trt_engine`, run in its container (gpu_worker.tao).

The container brings its own TensorRT, which must equal the host's (major.minor): an engine filed
under this host's platform key must load in this host's DeepStream. The container's TensorRT is
therefore part of the builder's configuration, and a mismatch is refused before any build.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gpu_worker.engines.base import BuildOutput, EngineBuilder, Int8Mode, ResolvedBuild
from gpu_worker.engines.exceptions import EngineBuildError
from gpu_worker.engines.platform import PlatformFacts, major_minor

if TYPE_CHECKING:
    from gpu_worker.config import TaoSettings
    from gpu_worker.tao.runner import TaoRunner

# TensorRT inside NVIDIA's deploy images (from the TAO release notes; unconfirmed on a real host).
KNOWN_DEPLOY_TENSORRT = {"nvcr.io/nvidia/tao/tao-toolkit:5.0.0-deploy": "8.5.3"}
_MOUNT_ROOT = PurePosixPath("/workspace/tao-experiments/engine-build")


class TaoDeployBuilder(EngineBuilder):
    name = "tao-deploy"

    def __init__(
        self,
        facts: PlatformFacts,
        settings: TaoSettings,
        container_tensorrt_version: str,
        runner: TaoRunner | None = None,
    ) -> None:
        super().__init__(facts)
        self.settings = settings
        self.container_tensorrt_version = container_tensorrt_version
        self._runner = runner

    def supports(self, source: Path) -> bool:
        return source.suffix in (".onnx", ".etlt")

    def args(self, build: ResolvedBuild, engine_path: Path, mount: dict[Path, PurePosixPath]) -> tuple[str, ...]:
        request = build.request
        if request.experiment_spec is None:
            raise EngineBuildError("TAO Deploy gen_trt_engine needs the experiment spec (BuildRequest.experiment_spec)")

        def inside(path: Path) -> str:
            return str(mount[path.parent.resolve()] / path.name)

        args = [
            "-m", inside(build.source),
            "-e", inside(request.experiment_spec),
            "-r", str(mount[engine_path.parent.resolve()]),
            "--data_type", str(request.precision),
            "--engine_file", inside(engine_path),
            "--max_batch_size", str(request.max_batch),
            "--batch_size", str(request.opt_batch),
        ]  # fmt: skip
        if build.int8_mode is Int8Mode.CALIBRATION_CACHE:
            assert request.calibration_cache is not None
            args += ["--cal_cache_file", inside(request.calibration_cache)]
        return tuple(args)

    def _build(self, build: ResolvedBuild, engine_path: Path) -> BuildOutput:
        from gpu_worker.tao.command import MountPlan, TaoInvocation, TaoTask
        from gpu_worker.tao.runner import TaoRunner

        host_trt = self.facts.tensorrt_major_minor
        if host_trt != major_minor(self.container_tensorrt_version):
            raise EngineBuildError(
                f"the TAO Deploy image has TensorRT {self.container_tensorrt_version}, this host {host_trt}: "
                "its engine would not load here; build with trtexec or the TensorRT Python API instead"
            )
        if build.request.hardware_compatibility is not None:
            raise EngineBuildError("TAO Deploy's gen_trt_engine cannot build hardware-compatible engines")
        folders = [build.source.parent, engine_path.parent]
        for extra in (build.request.experiment_spec, build.request.calibration_cache):
            if extra is not None:
                folders.append(extra.parent)
        mount: dict[Path, PurePosixPath] = {}
        plan = MountPlan()
        for folder in folders:
            resolved = folder.resolve()
            if resolved not in mount:
                mount[resolved] = _MOUNT_ROOT / str(len(mount))
                plan.add(resolved, mount[resolved])
        invocation = TaoInvocation(task=TaoTask.GEN_TRT_ENGINE, args=self.args(build, engine_path, mount), mounts=plan)
        runner = self._runner or TaoRunner(self.settings)
        result = runner.run(invocation, timeout_s=build.request.timeout_s)
        return BuildOutput(tensorrt_version=self.container_tensorrt_version, log_tail=result.last_lines)
