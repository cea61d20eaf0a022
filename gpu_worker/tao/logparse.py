"""Progress and metrics from TAO DetectNet_v2 output.

Formats seen in TAO 3-5 logs:
- TAO 4/5 task progress hook:
  `... task_progress_monitor_hook 149: Epoch 3/80: loss: 0.06473 learning rate: 1.25e-05 Time taken: ...`
- TensorFlow's step logger: `INFO:tensorflow:epoch = 0.0612, learning_rate = 1.27e-05, loss = 0.0449, step = 151`
- validation blocks (during train and from evaluate), with the class table in `pretty` (TAO >= 4)
  or `simple` (older) tabulate format:
      Epoch 120/120
      =========================
      Validation cost: 0.003051
      Mean average_precision (in %): 40.3805
      | class name | average precision (in %) |      or      person      40.3805
      |   person   |    40.38046396159004     |
- Keras model summary: `Total params: 1,234,567`.
Metrics are returned as fractions: {"AP/person": 0.4038, "mAP": 0.4038}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_PROGRESS_HOOK = re.compile(
    rf"Epoch (?P<epoch>\d+)/(?P<total>\d+): loss: (?P<loss>{_NUM})(?: learning rate: (?P<lr>{_NUM}))?"
)
_TF_STEP = re.compile(
    rf"epoch = (?P<epoch>{_NUM}), learning_rate = (?P<lr>{_NUM}), loss = (?P<loss>{_NUM}), step = (?P<step>\d+)"
)
_EPOCH_HEADER = re.compile(r"^\s*Epoch (?P<epoch>\d+)/(?P<total>\d+)\s*$")
_VALIDATION_COST = re.compile(rf"Validation cost: (?P<cost>{_NUM})")
_MAP = re.compile(rf"Mean average_precision \(in %\): (?P<map>{_NUM})")
_TABLE_HEADER = re.compile(r"class name\s*\|?\s*average precision \(in %\)")
_PRETTY_ROW = re.compile(rf"^\s*\|\s*(?P<name>[^|]+?)\s*\|\s*(?P<ap>{_NUM})\s*\|\s*$")
_SIMPLE_ROW = re.compile(rf"^\s*(?P<name>\S+)\s+(?P<ap>{_NUM})\s*$")
_TABLE_RULE = re.compile(r"^\s*[+\-| ]+$")
_TOTAL_PARAMS = re.compile(r"Total params: (?P<n>[\d,]+)")


@dataclass(frozen=True)
class TaoProgress:
    """One progress event; `message` is what goes to the job's progress callback."""

    message: str
    epoch: float | None = None
    total_epochs: int | None = None
    loss: float | None = None
    learning_rate: float | None = None
    mean_ap: float | None = None  # fraction


@dataclass
class TaoLogParser:
    """Feed it every line of a TAO task's output; it yields progress events and keeps the metrics."""

    total_epochs: int | None = None  # from the spec, for TF step lines that carry no total
    metrics: dict[str, float] = field(default_factory=dict)  # the last complete validation block
    num_params: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, loss, learning_rate, mAP
    _block: dict[str, float] | None = None
    _in_table: bool = False
    _header_epoch: tuple[int, int] | None = None

    def feed(self, line: str) -> TaoProgress | None:
        if (m := _TOTAL_PARAMS.search(line)) is not None:
            self.num_params = int(m["n"].replace(",", ""))
        if self._in_table:
            if self._table_row(line):
                return None
            if _TABLE_RULE.match(line) and line.strip():
                return None
            self._finish_block()
        if (m := _PROGRESS_HOOK.search(line)) is not None:
            self.total_epochs = int(m["total"])
            progress = self._progress(float(m["epoch"]), int(m["total"]), m["loss"], m["lr"])
            entry = {"epoch": float(m["epoch"]), "loss": float(m["loss"])}
            if progress.learning_rate is not None:
                entry["learning_rate"] = progress.learning_rate
            self.history = [h for h in self.history if h["epoch"] != entry["epoch"]] + [entry]
            return progress
        if (m := _TF_STEP.search(line)) is not None:
            return self._progress(float(m["epoch"]), self.total_epochs, m["loss"], m["lr"])
        if (m := _EPOCH_HEADER.match(line)) is not None:
            self._header_epoch = (int(m["epoch"]), int(m["total"]))
            return None
        if (m := _VALIDATION_COST.search(line)) is not None:
            self._block = {"validation_cost": float(m["cost"])}
            return None
        if (m := _MAP.search(line)) is not None:
            mean_ap = float(m["map"]) / 100.0
            if self._block is None:
                self._block = {}
            self._block["mAP"] = mean_ap
            if self._header_epoch is not None:
                for entry in self.history:
                    if entry["epoch"] == self._header_epoch[0]:
                        entry["mAP"] = mean_ap
            where = f"epoch {self._header_epoch[0]}/{self._header_epoch[1]} " if self._header_epoch else ""
            return TaoProgress(message=f"validation {where}mAP={mean_ap:.4f}", mean_ap=mean_ap)
        if _TABLE_HEADER.search(line) and self._block is not None:
            self._in_table = True
        return None

    def finish(self) -> dict[str, float]:
        """Call at the end of the output; returns {"AP/<class>": ..., "mAP": ...} (may be empty)."""
        if self._in_table:
            self._finish_block()
        return dict(self.metrics)

    def _table_row(self, line: str) -> bool:
        assert self._block is not None
        m = _PRETTY_ROW.match(line) or _SIMPLE_ROW.match(line)
        if m is None or _TABLE_HEADER.search(line):
            return False
        self._block[f"AP/{m['name'].strip()}"] = float(m["ap"]) / 100.0
        return True

    def _finish_block(self) -> None:
        self._in_table = False
        if self._block is not None and "mAP" in self._block:
            self.metrics = {k: v for k, v in self._block.items() if k != "validation_cost"}
        self._block = None

    def _progress(self, epoch: float, total: int | None, loss: str, lr: str | None) -> TaoProgress:
        loss_value = float(loss)
        lr_value = float(lr) if lr is not None else None
        shown_epoch = f"{int(epoch)}" if epoch == int(epoch) else f"{epoch:.2f}"
        text = f"epoch {shown_epoch}/{total}" if total else f"epoch {shown_epoch}"
        text += f" loss={loss_value:.6g}"
        if lr_value is not None:
            text += f" lr={lr_value:.3g}"
        return TaoProgress(message=text, epoch=epoch, total_epochs=total, loss=loss_value, learning_rate=lr_value)


def parse_metrics(text: str) -> dict[str, float]:
    """The last validation block of a whole log, as fractions."""
    parser = TaoLogParser()
    for line in text.splitlines():
        parser.feed(line)
    return parser.finish()
