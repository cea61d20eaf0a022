"""One behavioural suite for the job queue port, run on SQLite (WAL) and on SQS + DLQ (moto)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import pytest
from adapter_support import QueueSpec, drain

from gpu_worker.ports.exceptions import LeaseLost
from gpu_worker.ports.queue import JobQueue

MakeQueue = Callable[..., JobQueue]


def _is_sqs(queue: JobQueue) -> bool:
    return type(queue).__name__ == "SqsJobQueue"


def test_send_receive_ack(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=5)
    assert queue.receive() is None
    message_id = queue.send('{"job_id": "j1"}')
    message = queue.receive(wait_s=1)
    assert message is not None
    assert (message.message_id, message.body, message.receive_count) == (message_id, '{"job_id": "j1"}', 1)
    assert queue.approximate_depth() == 1  # in flight still counts
    assert queue.receive() is None  # hidden while leased
    queue.ack(message)
    assert queue.approximate_depth() == 0
    assert queue.receive() is None


def test_unacknowledged_message_is_delivered_again(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=1)
    queue.send("job")
    first = queue.receive(wait_s=1)
    assert first is not None and first.receive_count == 1
    time.sleep(1.3)
    second = queue.receive(wait_s=1)
    assert second is not None
    assert (second.message_id, second.receive_count) == (first.message_id, 2)
    queue.ack(second)


def test_release_redelivers_after_its_delay(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=10)
    queue.send("job")
    message = queue.receive(wait_s=1)
    assert message is not None
    queue.release(message, delay_s=2, error="spot interruption")
    assert queue.receive() is None
    time.sleep(2.2)
    again = queue.receive(wait_s=1)
    assert again is not None and again.receive_count == 2


def test_failed_message_goes_to_dead_letters_with_its_last_error(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=10, max_receives=2)
    message_id = queue.send('{"job_id": "bad"}')
    for attempt in (1, 2):
        message = queue.receive(wait_s=1)
        assert message is not None and message.receive_count == attempt
        queue.release(message, error=f"CUDA out of memory (attempt {attempt})")
    assert queue.receive() is None
    assert queue.approximate_depth() == 0
    [dead] = queue.dead_letters()
    assert (dead.message_id, dead.body, dead.receive_count) == (message_id, '{"job_id": "bad"}', 2)
    assert dead.reason == "CUDA out of memory (attempt 2)"
    assert len(queue.dead_letters()) == 1  # peeking leaves the dead letters in place


def test_crashed_worker_message_is_dead_lettered_after_max_receives(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=1, max_receives=2)
    queue.send("job")
    for _ in range(2):
        assert queue.receive(wait_s=2) is not None  # the worker dies: no ack, no release
        time.sleep(1.2)
    assert queue.receive() is None
    [dead] = queue.dead_letters()
    assert dead.body == "job"
    assert dead.reason is not None and dead.reason.startswith("no acknowledgement after 2 receives")


def test_extend_keeps_the_message_hidden(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=1)
    queue.send("long job")
    message = queue.receive(wait_s=1)
    assert message is not None
    queue.extend(message, 4)
    time.sleep(1.5)  # past the first timeout, well before the extended one
    assert queue.receive() is None
    queue.ack(message)
    assert queue.approximate_depth() == 0


def test_receipt_of_a_finished_message_is_lease_lost(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=5)
    queue.send("job")
    message = queue.receive(wait_s=1)
    assert message is not None
    queue.ack(message)
    with pytest.raises(LeaseLost):
        queue.extend(message, 5)
    with pytest.raises(LeaseLost):
        queue.release(message)


def test_stale_receipt_after_another_consumer_took_over_is_lease_lost(make_queue: MakeQueue) -> None:
    queue = make_queue(visibility_timeout_s=1)
    if _is_sqs(queue):
        pytest.skip(
            "SQS (and moto) accept every receipt handle ever issued for a message, so a stale receipt "
            "cannot be told apart; the ledger's claim keeps two workers off one job"
        )
    queue.send("job")
    stale = queue.receive(wait_s=1)
    assert stale is not None
    time.sleep(1.2)
    current = queue.receive(wait_s=1)
    assert current is not None and current.receive_count == 2
    with pytest.raises(LeaseLost):
        queue.ack(stale)
    with pytest.raises(LeaseLost):
        queue.extend(stale, 10)
    with pytest.raises(LeaseLost):
        queue.release(stale, error="late")
    queue.ack(current)


def test_sqs_visibility_cap_of_12_hours_is_lease_lost(queue_spec: Callable[..., QueueSpec]) -> None:
    spec = queue_spec(visibility_timeout_s=5)
    if spec.kind != "sqs":
        pytest.skip("the 12 h cumulative visibility cap is an SQS limit")
    queue = spec.open()
    queue.send("job")
    message = queue.receive(wait_s=1)
    assert message is not None
    with pytest.raises(LeaseLost, match="12 h"):
        queue.extend(message, 43200)


def test_two_consumer_processes_never_hold_the_same_message(queue_spec: Callable[..., QueueSpec]) -> None:
    spec = queue_spec(visibility_timeout_s=30)
    queue = spec.open()
    sent = {queue.send(f"job-{n}") for n in range(40)}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    consumers = [ctx.Process(target=drain, args=(spec, barrier, 0.05, results)) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    reports = [results.get(timeout=90) for _ in consumers]
    for consumer in consumers:
        consumer.join(timeout=30)
        assert consumer.exitcode == 0
    processed = [entry for report in reports for entry in report]
    assert sorted(entry[0] for entry in processed) == sorted(sent)  # each message exactly once
    assert all(entry[2] == 1 for entry in processed)  # never redelivered
    assert all(len(report) > 0 for report in reports)  # both consumers really competed
    assert queue.approximate_depth() == 0
