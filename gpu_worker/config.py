"""Configuration: `PEOPLENET_*` environment variables over an optional TOML file over defaults.

Nested sections use `__` in env names, e.g. `PEOPLENET_AWS__BUCKET=my-bucket`.
The TOML file is `$PEOPLENET_CONFIG` if set, else `./peoplenet.toml` when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("peoplenet.toml")


class AwsSettings(BaseModel):
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="e.g. a moto server; None = real AWS")
    bucket: str | None = None
    jobs_queue_url: str | None = None
    jobs_dlq_url: str | None = None
    jobs_table: str | None = None
    idempotency_table: str | None = None
    events_topic_arn: str | None = None


class QueueSettings(BaseModel):
    visibility_timeout_s: int = Field(default=900, ge=1, le=43200)
    max_receives: int = Field(default=3, ge=1, description="Deliveries before a message is dead-lettered")
    heartbeat_interval_s: float = Field(default=60.0, gt=0)
    wait_time_s: int = Field(default=10, ge=0, le=20)


class WorkerSettings(BaseModel):
    backend: Literal["torch", "tao"] = "torch"
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    retry_backoff_s: float = 30.0
    spot_interruption_polling: bool = False
    metadata_endpoint: str = "http://169.254.169.254"
    work_dir: Path | None = Field(default=None, description="Scratch space; default <data_dir>/work")


class GateSettings(BaseModel):
    min_ap_change: dict[str, float] = Field(
        default_factory=lambda: {"person": 0.0},
        description="Per class: new AP minus production AP must be >= this (negative allows a drop)",
    )


class PruneSettings(BaseModel):
    """TAO `prune` options used by the pipeline's prune stage (-pth, -n, -eq, -pg, -nf, -el)."""

    enabled: bool = Field(default=True, description="Prune + retrain unless a job says otherwise")

    threshold: float = Field(default=0.1, ge=0)
    normalizer: Literal["max", "L2"] = "max"
    equalization: Literal["union", "intersection", "arithmetic_mean", "geometric_mean"] = "union"
    granularity: int = Field(default=8, ge=1)
    min_num_filters: int = Field(default=16, ge=1)
    excluded_layers: list[str] = Field(default_factory=list)
    scale_by_batch_norm: bool = Field(
        default=True,
        description="Rank filters by kernel norm x BN gain (not TAO: suits BN re-created around PeopleNet's folded "
        "weights); false = TAO's kernel-only norm",
    )
    keep_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Not TAO: every layer keeps this share of its filters instead of a global threshold; with "
        "target_reduction set, any value selects this mode and the steps search the share",
    )
    target_reduction: float | None = Field(
        default=0.30,
        gt=0,
        lt=1,
        description="Prune in steps until this share of parameters is gone (None: one cut at `threshold`)",
    )
    step_reduction: float = Field(default=0.05, gt=0, lt=1, description="Share removed per step")
    step_epochs: int | None = Field(
        default=None, ge=1, description="Epochs of retraining between steps (None: a quarter of the retrain spec's)"
    )
    distill: bool = Field(
        default=True,
        description="Retrain pruned models (between steps and in the retrain stage) distilling from the unpruned one",
    )
    distill_weight: float = Field(
        default=1.0, gt=0, description="Weight of the distillation cost (training/distill.py DEFAULT_DISTILL_WEIGHT)"
    )
    hint_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of conv-by-conv feature hints from the unpruned model in retrains (training/hints.py; "
        "needs distill); 0 = off",
    )
    reconstruct: bool = Field(
        default=False,
        description="Refit each cut's convs by least squares to the unpruned outputs on training images "
        "(pruning/reconstruct.py; measured worse than hints alone on PeopleNet, bench/results/prune_sweep.json)",
    )


class ExportSettings(BaseModel):
    int8: bool = Field(default=True, description="Also write a QDQ INT8 ONNX and a TensorRT calibration cache")
    calibration_images: int = Field(default=32, ge=1, description="Training images used to calibrate INT8")
    qat_epochs: int | None = Field(
        default=None,
        ge=0,
        description="Quantisation-aware fine-tuning epochs before the INT8 QDQ export (training/qat_finetune.py); "
        "None = a third of the training spec's epochs, 0 = post-training calibration only",
    )
    qat_hint_weight: float = Field(
        default=1.0, ge=0, description="Feature hints from the float model during QAT (training/hints.py); 0 = off"
    )


class TaoSettings(BaseModel):
    key: SecretStr = SecretStr("tlt_encode")
    train_image: str = "nvcr.io/nvidia/tao/tao-toolkit:5.0.0-tf1.15.5"
    deploy_image: str = "nvcr.io/nvidia/tao/tao-toolkit:5.0.0-deploy"
    use_gpus: bool = True
    gpu_ids: list[int] | None = None
    shm_size: str = "16G"
    timeout_s: int = 48 * 3600
    # The rest mirrors NVIDIA's launcher (~/.tao_mounts.json DockerOptions / Envs).
    converter_image: str | None = Field(default=None, description="Image with tao-converter; None = deploy_image")
    user: str | None = Field(default=None, description="Container user 'UID:GID'; None = the worker's own")
    ulimits: dict[str, int] = Field(default_factory=lambda: {"memlock": -1, "stack": 67108864})
    memory_limit: str | None = Field(default=None, description="Container RAM limit, e.g. '64g'; None = no limit")
    network_mode: str | None = Field(default=None, description="e.g. 'none'; None = Docker's default network")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for TAO containers")
    stop_grace_s: float = Field(default=30.0, ge=0, description="SIGTERM -> SIGKILL grace when stopping")
    export_format: Literal["onnx", "etlt"] = Field(default="onnx", description="onnx: TAO >= 5; etlt: older TAO")
    prune_threshold: float = Field(default=5.2e-6, ge=0)
    prune_granularity: int = Field(default=8, ge=1)
    prune_min_filters: int = Field(default=16, ge=1)


class NotifySettings(BaseModel):
    webhook_url: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PEOPLENET_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    mode: Literal["local", "aws"] = "local"
    data_dir: Path = Field(default=Path("data"), description="Local mode: store/, state.sqlite, inbox/")
    aws: AwsSettings = Field(default_factory=AwsSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    prune: PruneSettings = Field(default_factory=PruneSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    tao: TaoSettings = Field(default_factory=TaoSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = config_file_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # Local-mode layout, one data folder for everything.
    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def work_dir(self) -> Path:
        return self.worker.work_dir or self.data_dir / "work"


class ConfigError(ValueError):
    """The configuration file or environment is invalid."""


def config_file_path() -> Path | None:
    explicit = os.environ.get("PEOPLENET_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"PEOPLENET_CONFIG points at {path}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
