"""A container's output as lines, read on a thread into a queue (None marks the end of the stream)."""

from __future__ import annotations

import codecs
import logging
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.models.containers import Container

log = logging.getLogger(__name__)


def start_log_reader(container: Container, out: queue.Queue[str | None], since_start: bool) -> None:
    """Follow the container's stdout+stderr; all output so far, or (reattaching) new output only."""
    tail: str | int = "all" if since_start else 0
    threading.Thread(target=_read_lines, args=(container, out, tail), daemon=True).start()


def _read_lines(container: Container, out: queue.Queue[str | None], tail: str | int) -> None:
    try:
        stream = container.logs(stream=True, follow=True, stdout=True, stderr=True, tail=tail)
        for line in split_lines(stream):
            out.put(line)
    except Exception as exc:  # the container or the engine went away under us: end of output
        log.debug("log stream ended: %s", exc)
    finally:
        out.put(None)


def split_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Docker streams arbitrary chunks; TAO's progress bars end lines with '\\r'."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks may split a character
    buffer = ""
    for chunk in chunks:
        buffer += decoder.decode(chunk)
        parts = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buffer = parts.pop()
        yield from (part for part in parts if part.strip())
    if buffer.strip():
        yield buffer
