"""Background batch production for training: the loader runs ahead of the training step."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from gpu_worker.training.data import Batch


class BatchStream:
    """Runs the loader for a range of epochs in a background thread (on a side CUDA stream on GPU).

    Copies, augmentation and `prepare` (the trainer's target rasterisation) run here, overlapping the
    previous steps' compute instead of queueing in front of the model on the training stream; the next
    epoch's first batches load while the current epoch ends (order and augmentation depend on (seed,
    epoch) only, so running ahead changes nothing). `epoch(e)` yields epoch e's batches; `close()`
    stops the thread.
    """

    _END = object()

    def __init__(
        self,
        loader: Any,
        device: torch.device,
        epochs: range,
        depth: int = 3,
        prepare: Callable[[Batch], Batch] | None = None,
    ) -> None:
        self.loader = loader
        self.prepare = prepare
        self.device = device
        self.epochs = epochs
        self.steps_per_epoch = len(loader)
        self._items: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batch-stream", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        cuda = self.device.type == "cuda"
        stream = torch.cuda.Stream(self.device) if cuda else None
        try:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for epoch in self.epochs:
                    self.loader.set_epoch(epoch)
                    for batch in self.loader:
                        if self.prepare is not None:
                            batch = self.prepare(batch)
                        ready = None
                        if stream is not None:
                            ready = torch.cuda.Event()
                            ready.record(stream)
                        self._put((epoch, batch, ready))
                        if self._stop.is_set():
                            return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer and raised there
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._items.put(item, timeout=0.05)
                return

    def epoch(self, epoch: int) -> Iterator[Batch]:
        for _ in range(self.steps_per_epoch):
            item = self._items.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            produced, batch, ready = item
            if produced != epoch:
                raise RuntimeError(f"batch stream out of step: expected epoch {epoch}, got {produced}")
            if ready is not None:
                main = torch.cuda.current_stream(self.device)
                main.wait_event(ready)
                targets = batch.targets if batch.targets is not None else ()
                for tensor in (batch.images, batch.scales, batch.weights, *batch.boxes, *batch.classes, *targets):
                    tensor.record_stream(main)  # the allocator must not reuse them before `main` is done
            yield batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
