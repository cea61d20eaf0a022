"""The agent on DeepStream hosts: follows a channel, pulls or builds its platform's engine, installs it."""

from __future__ import annotations

from gpu_worker.agent.agent import Agent, AgentConfig, SyncOutcome, SyncResult
from gpu_worker.agent.events import ChannelWatcher, PollingWatcher, SqsWatcher, ensure_agent_queue, parse_notification
from gpu_worker.agent.install import InstalledSet, install_set, read_set, rollback

__all__ = [
    "Agent",
    "AgentConfig",
    "ChannelWatcher",
    "InstalledSet",
    "PollingWatcher",
    "SqsWatcher",
    "SyncOutcome",
    "SyncResult",
    "ensure_agent_queue",
    "install_set",
    "parse_notification",
    "read_set",
    "rollback",
]
