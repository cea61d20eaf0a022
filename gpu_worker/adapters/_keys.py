"""Object keys: relative, '/'-separated, never escaping the store's root."""

from __future__ import annotations

RESERVED_PREFIX = ".peoplenet-store"  # the local store keeps temp files and its lock here


def check_key(key: str) -> str:
    """Return key unchanged, or raise ValueError when it is empty, absolute or has '.'/'..'/'' segments."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: keys are relative, '/'-separated paths")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' segments are not allowed")
    if parts[0] == RESERVED_PREFIX:
        raise ValueError(f"invalid object key {key!r}: {RESERVED_PREFIX}/ is reserved")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' (everything) or a key-like string; may end with '/'."""
    if prefix:
        check_key(prefix.rstrip("/") or "/")
    return prefix
