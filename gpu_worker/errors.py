"""Errors a user can cause. The CLI prints their message and exits 2; no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a spec, a setting. The message says what and where."""

    exit_code = 2


class RetryableJobError(Exception):
    """A job failed for a reason that may pass (network, spot interruption): retry with backoff."""


class PermanentJobError(Exception):
    """A job can never succeed as given (bad data, bad spec, missing base model): fail it now."""
