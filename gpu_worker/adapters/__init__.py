"""Adapters for the four ports: local (folder, SQLite, log) and AWS (S3, SQS, DynamoDB, SNS).

`build_adapters(settings)` picks the set for `settings.mode`. The AWS classes load boto3 on first
use (`from gpu_worker.adapters import S3Store` works, but local mode never imports boto3).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gpu_worker.adapters.factory import Adapters, build_adapters
from gpu_worker.adapters.local_store import LocalFolderStore
from gpu_worker.adapters.log_notifier import LogNotifier
from gpu_worker.adapters.sqlite_ledger import SqliteJobLedger
from gpu_worker.adapters.sqlite_queue import SqliteJobQueue

if TYPE_CHECKING:
    from gpu_worker.adapters.dynamo_ledger import DynamoJobLedger
    from gpu_worker.adapters.s3_store import S3Store
    from gpu_worker.adapters.sns_notifier import SnsNotifier
    from gpu_worker.adapters.sqs_queue import SqsJobQueue

_LAZY = {
    "S3Store": "gpu_worker.adapters.s3_store",
    "SqsJobQueue": "gpu_worker.adapters.sqs_queue",
    "DynamoJobLedger": "gpu_worker.adapters.dynamo_ledger",
    "SnsNotifier": "gpu_worker.adapters.sns_notifier",
}

__all__ = [
    "Adapters",
    "DynamoJobLedger",
    "LocalFolderStore",
    "LogNotifier",
    "S3Store",
    "SnsNotifier",
    "SqliteJobLedger",
    "SqliteJobQueue",
    "SqsJobQueue",
    "build_adapters",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
