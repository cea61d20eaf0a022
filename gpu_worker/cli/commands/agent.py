"""`peoplenet-retrain agent`: keep a DeepStream folder on the channel's model, with this platform's engine."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from gpu_worker.config import Settings
    from gpu_worker.ports.notifier import Notifier
    from gpu_worker.ports.store import ObjectStore


def _store_and_notifier(settings: Settings) -> tuple[ObjectStore, Notifier | None]:
    """The agent needs only the bucket (and the topic, to announce engines it built)."""
    if settings.mode == "aws":
        from gpu_worker.adapters.s3_store import S3Store
        from gpu_worker.config import ConfigError

        aws = settings.aws
        if not aws.bucket:
            raise ConfigError("mode is 'aws' but PEOPLENET_AWS__BUCKET (aws.bucket) is not set")
        store: ObjectStore = S3Store(aws.bucket, endpoint_url=aws.endpoint_url, region=aws.region)
        notifier: Notifier | None = None
        if aws.events_topic_arn:
            from gpu_worker.adapters.sns_notifier import SnsNotifier

            notifier = SnsNotifier(aws.events_topic_arn, endpoint_url=aws.endpoint_url, region=aws.region)
        return store, notifier
    from gpu_worker.adapters.local_store import LocalFolderStore
    from gpu_worker.adapters.log_notifier import LogNotifier

    return LocalFolderStore(settings.store_dir), LogNotifier(webhook_url=settings.notify.webhook_url)


def register(app: typer.Typer) -> None:
    agent_app = typer.Typer(
        help="Follow a channel and install this platform's engine into a DeepStream folder.",
        invoke_without_command=True,
    )

    @agent_app.callback()
    def agent(
        ctx: typer.Context,
        deepstream_dir: Path | None = typer.Option(None, "--deepstream-dir", help="Folder DeepStream reads"),
        channel: str = typer.Option("production", "--channel"),
        once: bool = typer.Option(False, "--once", help="Sync once and exit (exit 1 unless installed/up to date)"),
        poll_interval: float = typer.Option(60.0, "--poll-interval", min=0.1, help="Seconds between pointer checks"),
        queue_url: str | None = typer.Option(
            None, "--queue-url", help="This agent's SQS queue subscribed to the events topic (wakes it early)"
        ),
        post_install: str | None = typer.Option(None, "--post-install", help="Command run after each install"),
        precision: str | None = typer.Option(None, "--precision", help="fp32|fp16|int8 for engines built here"),
        max_batch: int = typer.Option(4, "--max-batch", min=1, help="Max batch of engines built here"),
        work_dir: Path | None = typer.Option(None, "--work-dir", help="Scratch (default DIR/.agent-work)"),
    ) -> None:
        """Run the agent (see `agent rollback` to return to the previous set)."""
        if ctx.invoked_subcommand is not None:
            return
        from gpu_worker.agent import Agent, AgentConfig, PollingWatcher, SqsWatcher, SyncOutcome
        from gpu_worker.agent.events import ChannelWatcher
        from gpu_worker.config import load_settings
        from gpu_worker.engines import detect_platform, select_builder
        from gpu_worker.engines.lock import default_owner
        from gpu_worker.errors import UserError
        from peoplenet_contracts import Precision

        if deepstream_dir is None:
            raise UserError("--deepstream-dir is required: the folder DeepStream reads its engine and config from")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = load_settings()
        store, notifier = _store_and_notifier(settings)
        facts = detect_platform()
        facts.require_platform_key()
        watcher: ChannelWatcher = PollingWatcher()
        if queue_url:
            from gpu_worker.adapters._aws import make_client

            sqs = make_client("sqs", endpoint_url=settings.aws.endpoint_url, region=settings.aws.region)
            watcher = SqsWatcher(sqs, queue_url, channel)
        config = AgentConfig(
            deepstream_dir=deepstream_dir,
            work_dir=work_dir or deepstream_dir / ".agent-work",
            owner=default_owner(),
            channel=channel,
            poll_interval_s=poll_interval,
            post_install=post_install,
            precision=Precision(precision) if precision else None,
            max_batch=max_batch,
        )
        runner = Agent(store, facts, select_builder(facts, ".onnx", settings.tao), config, notifier=notifier,
                       watcher=watcher)  # fmt: skip
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        result = runner.run(once=once, stop=stop)
        typer.echo(f"{result.outcome}: {result.message}")
        if once and result.outcome not in (SyncOutcome.INSTALLED, SyncOutcome.UP_TO_DATE):
            raise typer.Exit(1)

    @agent_app.command("rollback")
    def rollback_cmd(
        deepstream_dir: Path = typer.Option(..., "--deepstream-dir"),
        post_install: str | None = typer.Option(None, "--post-install", help="Command run after the rollback"),
    ) -> None:
        """Make the previously installed engine set current again."""
        import shlex
        import subprocess

        from gpu_worker.agent import rollback

        installed = rollback(deepstream_dir)
        typer.echo(f"rolled back to {installed.model_version} ({installed.platform}, {installed.precision})")
        if post_install:
            raise typer.Exit(subprocess.run(shlex.split(post_install), check=False).returncode)

    @agent_app.command("subscribe")
    def subscribe(
        topic_arn: str = typer.Option(..., "--topic-arn", help="The events SNS topic"),
        queue_name: str = typer.Option(..., "--queue-name", help="This host's own queue, e.g. agent-<hostname>"),
    ) -> None:
        """Create this agent's SQS queue, subscribed to the topic for ModelPublished only; print its URL."""
        from gpu_worker.adapters._aws import make_client
        from gpu_worker.agent import ensure_agent_queue
        from gpu_worker.config import load_settings

        aws = load_settings().aws
        sns = make_client("sns", endpoint_url=aws.endpoint_url, region=aws.region)
        sqs = make_client("sqs", endpoint_url=aws.endpoint_url, region=aws.region)
        typer.echo(ensure_agent_queue(sns, sqs, topic_arn, queue_name))

    app.add_typer(agent_app, name="agent")
