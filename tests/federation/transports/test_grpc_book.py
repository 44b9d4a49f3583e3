"""The coordinator's book of outstanding tasks: one answer per task id, from its node, in time."""

from __future__ import annotations

import threading

import pytest

from sovereign_ai.core import Result
from sovereign_ai.errors import StaleMessageError, TransportError
from sovereign_ai.federation.transports.grpc._book import TaskBook
from sovereign_ai.federation.transports.grpc._codec import Payload

from .conftest import task_for


def book_with(*nodes: str) -> TaskBook:
    book = TaskBook(liveness_window_s=60.0, max_pulls_per_node=1)
    for node in nodes:
        book.touch(node)
    return book


def answer_to(node_id: str) -> Result:
    task = task_for(node_id)
    return Result(task.job_id, task.round_number, task.stage, node_id, 3, task.parameters)


def test_tasks_for_nodes_not_connected_fail_at_once() -> None:
    book = book_with("hospital-a")

    run = book.open_stage(
        [task_for("hospital-a"), task_for("hospital-b")], encode=Payload.of, timeout_s=0.05
    )
    outcome = book.wait(run)

    assert outcome.failures == {
        "hospital-a": "node did not fetch its task within 0.05 s",
        "hospital-b": "node is not connected",
    }


def test_one_payload_encoding_per_distinct_model() -> None:
    book, encoded = book_with("hospital-a", "hospital-b"), []
    shared = task_for("hospital-a").parameters
    tasks = [task_for("hospital-a"), task_for("hospital-b")]
    tasks = [type(t)(**{**vars(t), "parameters": shared}) for t in tasks]

    def encode(parameters: object) -> Payload:
        encoded.append(parameters)
        return Payload.of(shared)

    book.open_stage(tasks, encode=encode, timeout_s=1.0)  # type: ignore[arg-type]

    assert len(encoded) == 1


def test_a_broken_send_is_queued_again_and_a_complete_one_is_not() -> None:
    book = book_with("hospital-a")
    book.open_stage([task_for("hospital-a")], encode=Payload.of, timeout_s=1.0)

    first = book.take("hospital-a", wait_s=1.0, is_active=lambda: True)
    assert first is not None
    book.sent(first, is_complete=False)
    again = book.take("hospital-a", wait_s=1.0, is_active=lambda: True)
    assert again is first
    book.sent(again, is_complete=True)

    assert book.take("hospital-a", wait_s=0.05, is_active=lambda: True) is None
    assert [a.is_busy for a in book.activity()] == [True]


def test_results_are_accepted_once_and_only_from_their_node() -> None:
    book = book_with("hospital-a", "hospital-b")
    run = book.open_stage([task_for("hospital-a")], encode=Payload.of, timeout_s=5.0)
    pending = book.take("hospital-a", wait_s=1.0, is_active=lambda: True)
    assert pending is not None
    book.sent(pending, is_complete=True)

    with pytest.raises(StaleMessageError, match="never issued"):
        book.claim(b"\x01" * 16, "hospital-a")
    with pytest.raises(StaleMessageError, match="issued to another node, not 'hospital-b'"):
        book.claim(pending.task_id, "hospital-b")
    claimed = book.claim(pending.task_id, "hospital-a")
    with pytest.raises(StaleMessageError, match=r"Another result for task .* is arriving"):
        book.claim(pending.task_id, "hospital-a")
    book.release(claimed, refusal="bad digest")
    claimed = book.claim(pending.task_id, "hospital-a")
    book.settle(claimed, result=answer_to("hospital-a"), failure=None)
    with pytest.raises(StaleMessageError, match=r"no longer open \(it was already answered\)"):
        book.claim(pending.task_id, "hospital-a")

    outcome = book.wait(run)
    assert [r.node_id for r in outcome.results] == ["hospital-a"]
    assert outcome.failures == {}


def test_a_result_arriving_after_the_deadline_is_refused() -> None:
    book = book_with("hospital-a")
    run = book.open_stage([task_for("hospital-a")], encode=Payload.of, timeout_s=0.05)
    pending = book.take("hospital-a", wait_s=1.0, is_active=lambda: True)
    assert pending is not None
    claimed = book.claim(pending.task_id, "hospital-a")

    outcome = book.wait(run)
    with pytest.raises(StaleMessageError, match="closed while its result was arriving"):
        book.settle(claimed, result=answer_to("hospital-a"), failure=None)

    assert outcome.failures == {"hospital-a": "its result was still arriving after 0.05 s"}


def test_one_node_cannot_hold_more_long_polls_than_allowed() -> None:
    book = book_with("hospital-a")
    release = threading.Event()
    waiting = threading.Thread(
        target=book.take,
        args=("hospital-a",),
        kwargs={"wait_s": 5.0, "is_active": lambda: not release.is_set()},
    )
    waiting.start()
    try:
        assert book.wait_until(lambda: "hospital-a" in book.live_nodes(), timeout_s=1.0)
        with pytest.raises(TransportError, match="already holds 1 long-polls"):
            book.take("hospital-a", wait_s=0.01, is_active=lambda: True)
    finally:
        release.set()
        waiting.join(5.0)


def test_closing_ends_open_stages_at_once() -> None:
    book = book_with("hospital-a")
    run = book.open_stage([task_for("hospital-a")], encode=Payload.of, timeout_s=60.0)
    threading.Timer(0.05, book.close).start()

    outcome = book.wait(run)

    assert outcome.failures == {"hospital-a": "the coordinator transport was closed"}
