"""Errors raised by every adapter, so callers never see botocore or sqlite3 errors."""

from __future__ import annotations


class PreconditionFailed(Exception):
    """A conditional write lost: the object or record changed (or exists) since it was read."""


class LeaseLost(Exception):
    """The message's lease expired or was taken by another consumer; its receipt is no longer valid."""


class AdapterUnavailable(Exception):
    """The backing service cannot be reached (dead endpoint, missing table or queue). Retryable."""
