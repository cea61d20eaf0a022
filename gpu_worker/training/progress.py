"""Training progress: a rich progress bar in a terminal, or plain lines to a callback (services, logs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gpu_worker.training.engine import EpochStats


class Reporter(Protocol):
    def run(
        self, num_epochs: int, steps_per_epoch: int, start_epoch: int
    ) -> contextlib.AbstractContextManager[None]: ...

    def step(self, epoch: int, index: int, steps: int, loss: float, images_per_second: float) -> None: ...

    def epoch_done(self, stats: EpochStats, num_epochs: int) -> None: ...

    def message(self, text: str) -> None: ...


def _epoch_line(stats: EpochStats, num_epochs: int) -> str:
    bad = f", {stats.nonfinite_steps} non-finite steps skipped" if stats.nonfinite_steps else ""
    return (
        f"epoch {stats.epoch + 1}/{num_epochs}: loss {stats.loss:.5f} (cov {stats.cov_loss:.5f}, "
        f"bbox {stats.bbox_loss:.5f}), lr {stats.learning_rate:.2e}, {stats.images_per_second:.1f} img/s{bad}"
    )


class CallbackReporter:
    """Plain text lines to `emit` (e.g. a job's log): one per log interval and one per epoch."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit

    @contextlib.contextmanager
    def run(self, num_epochs: int, steps_per_epoch: int, start_epoch: int) -> Iterator[None]:
        self.emit(f"training {num_epochs} epochs x {steps_per_epoch} steps, from epoch {start_epoch}")
        yield

    def step(self, epoch: int, index: int, steps: int, loss: float, images_per_second: float) -> None:
        self.emit(f"epoch {epoch + 1} step {index}/{steps}: loss {loss:.5f}, {images_per_second:.1f} img/s")

    def epoch_done(self, stats: EpochStats, num_epochs: int) -> None:
        self.emit(_epoch_line(stats, num_epochs))

    def message(self, text: str) -> None:
        self.emit(text)


class RichReporter:
    """A rich progress bar on stderr with the running loss and throughput."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._progress: object | None = None
        self._task: object | None = None

    @contextlib.contextmanager
    def run(self, num_epochs: int, steps_per_epoch: int, start_epoch: int) -> Iterator[None]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        total = num_epochs * steps_per_epoch
        with progress:
            self._progress = progress
            self._task = progress.add_task("train", total=total, completed=start_epoch * steps_per_epoch, status="")
            try:
                yield
            finally:
                self._progress = None

    def step(self, epoch: int, index: int, steps: int, loss: float, images_per_second: float) -> None:
        from rich.progress import Progress

        if isinstance(self._progress, Progress) and self._task is not None:
            status = f"epoch {epoch + 1} loss {loss:.5f} {images_per_second:.1f} img/s"
            self._progress.update(self._task, completed=epoch * steps + index, status=status)  # type: ignore[arg-type]

    def epoch_done(self, stats: EpochStats, num_epochs: int) -> None:
        self.console.print(_epoch_line(stats, num_epochs), highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)


def make_reporter(progress: Callable[[str], None] | None) -> Reporter:
    return CallbackReporter(progress) if progress is not None else RichReporter()
