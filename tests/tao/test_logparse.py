"""Progress and metrics from real TAO DetectNet_v2 log formats (no Docker needed)."""

from __future__ import annotations

import pytest

from gpu_worker.tao.logparse import TaoLogParser, parse_metrics

TAO5_TRAIN = """\
2024-01-31 11:05:27,929 [TAO Toolkit] [INFO] nvidia_tao_tf1.cv.detectnet_v2.tfhooks.task_progress_monitor_hook 149: \
Epoch 7/80: loss: 0.06473 learning rate: 1.2500004e-05 Time taken: 0:00:00 ETA: 0:00:00
INFO:tensorflow:epoch = 0.0008110300081103001, learning_rate = 1.25029255e-05, loss = 0.060774766, step = 2 (14.797 sec)
Matching predictions to ground truth, class 1/1.: 100%|████| 4835/4835 [00:00<00:00, 29413.46it/s]
Epoch 120/120
=========================

Validation cost: 0.003051
Mean average_precision (in %): 40.3805

+------------+--------------------------+
| class name | average precision (in %) |
+------------+--------------------------+
|    bag     |    12.5                  |
|   person   |    40.38046396159004     |
+------------+--------------------------+

Median Inference Time: 0.000794
Total params: 2,123,456
"""

TLT3_EVALUATE = """\
Validation cost: 0.000045
Mean average_precision (in %): 76.4810

class name      average precision (in %)
------------  --------------------------
car                              81.5105
cyclist                          80.9753
pedestrian                       66.9571

Median Inference Time: 0.005755
"""


def test_tao5_progress_and_validation_block() -> None:
    parser = TaoLogParser(total_epochs=80)
    events = [e for e in (parser.feed(line) for line in TAO5_TRAIN.splitlines()) if e is not None]
    hook, step, validation = events
    assert (hook.epoch, hook.total_epochs, hook.loss, hook.learning_rate) == (7.0, 80, 0.06473, 1.2500004e-05)
    assert hook.message == "epoch 7/80 loss=0.06473 lr=1.25e-05"
    assert step.epoch == pytest.approx(0.00081103) and step.total_epochs == 80 and step.loss == 0.060774766
    assert validation.message == "validation epoch 120/120 mAP=0.4038"
    assert parser.finish() == {"AP/bag": 0.125, "AP/person": pytest.approx(0.4038046), "mAP": pytest.approx(0.403805)}
    assert parser.num_params == 2123456


def test_older_simple_table_and_last_block_wins() -> None:
    metrics = parse_metrics(TLT3_EVALUATE.replace("76.4810", "10.0") + TLT3_EVALUATE)
    assert metrics == {
        "AP/car": pytest.approx(0.815105),
        "AP/cyclist": pytest.approx(0.809753),
        "AP/pedestrian": pytest.approx(0.669571),
        "mAP": pytest.approx(0.76481),
    }


def test_no_metrics_in_unrelated_output() -> None:
    assert parse_metrics("Epoch 1/2\nsomething else\nExecution status: PASS\n") == {}


def test_stream_chunks_become_lines() -> None:
    from gpu_worker.tao.logstream import split_lines

    bar = "100%|█|".encode()
    chunks = [b"Epoch 1/2: lo", b"ss: 0.5\nmatch " + bar[:5], bar[5:] + b" 1/2\rmatch 2/2\r\n\n", b"tail"]
    assert list(split_lines(iter(chunks))) == ["Epoch 1/2: loss: 0.5", "match 100%|█| 1/2", "match 2/2", "tail"]
