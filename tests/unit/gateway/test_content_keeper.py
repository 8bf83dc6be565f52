"""The gateway's content keeper (off the request path): every job sealed under key files made durable
before its message is handed over, a job that cannot be sealed counted lost without losing the rest
of its batch, a full queue counted, and close() keeping what was queued. Real key files in a
temporary folder; the content producer is a list (the Kafka side is tested in
tests/integration/test_gateway.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aiaudit.pipeline import metrics
from aiaudit.pipeline.contract.subject_keys import SubjectKeys
from aiaudit.pipeline.gateway.evidence import ContentKeeper, KeepJob


class Sent:
    """What the keeper hands to the content producer, and what it counts lost."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.messages: list[dict] = []
        self.lost = 0
        self.gate = gate

    def keep_content(self, message: dict) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.messages.append(message)

    def flush_content(self, timeout_s: float) -> int:
        return 0

    def count_lost(self) -> None:
        self.lost += 1


def job(n: int, subject: str = "alice@acme") -> KeepJob:
    return KeepJob(f"event-{n}", (subject,), "2027-01-01T00:00:00+00:00", "standard", {"prompt": f"text {n}"})


def lost_count() -> float:
    return metrics.GATEWAY_UNRECORDED.labels("content")._value.get()


def test_every_job_is_sealed_under_durable_keys_and_opens(tmp_path: Path):
    keys = SubjectKeys(tmp_path / "keys")
    sent = Sent()
    keeper = ContentKeeper(keys, sent)  # type: ignore[arg-type]
    for n in range(50):
        keeper.submit(job(n, subject=f"person-{n % 3}@acme"))
    assert keeper.close(10) == 0
    assert sorted(m["event_id"] for m in sent.messages) == sorted(f"event-{n}" for n in range(50))
    for m in sent.messages:
        opened = keys.open(m["event_id"], m["subjects"], m["key_ids"], m["sealed"])
        assert opened == {"prompt": f"text {m['event_id'].split('-')[1]}"}
    assert len(list((tmp_path / "keys" / "subjects").glob("*.key"))) == 3  # one a person, however many requests
    assert keys.records.count() == 50 and not (tmp_path / "keys" / "records").exists()  # rows, not a file a request


def test_a_job_that_cannot_be_sealed_is_counted_and_the_rest_of_its_batch_is_kept(tmp_path: Path):
    keys = SubjectKeys(tmp_path / "keys")
    gate = threading.Event()
    sent = Sent(gate)
    keeper = ContentKeeper(keys, sent)  # type: ignore[arg-type]
    before = lost_count()
    keeper.submit(job(0))  # taken alone, held at the producer until the gate opens: the rest queue up as one batch
    keeper.submit(job(1))
    keeper.submit(job(2, subject="x" * 300))  # no subject is that long: refused by the key store
    keeper.submit(job(3))
    gate.set()
    assert keeper.drain(10) == 0
    assert [m["event_id"] for m in sent.messages] == ["event-0", "event-1", "event-3"]
    assert sent.lost == 1 and lost_count() == before + 1
    keeper.close(5)


def test_a_full_queue_drops_the_content_counted_and_keeps_what_it_holds(tmp_path: Path):
    gate = threading.Event()
    sent = Sent(gate)
    keeper = ContentKeeper(SubjectKeys(tmp_path / "keys"), sent, max_queued=2)  # type: ignore[arg-type]
    keeper.submit(job(0))
    for _ in range(100):  # until the thread has taken job 0 (it then waits at the gate)
        if not keeper._queue.qsize():
            break
        time.sleep(0.01)
    keeper.submit(job(1))
    keeper.submit(job(2))
    keeper.submit(job(3))  # the queue holds two: this one is dropped
    assert sent.lost == 1
    gate.set()
    assert keeper.close(10) == 0
    assert [m["event_id"] for m in sent.messages] == ["event-0", "event-1", "event-2"]


def test_a_batch_makes_its_keys_durable_together_on_leaving_and_none_of_them_on_an_error(tmp_path: Path):
    keys = SubjectKeys(tmp_path / "keys")
    with keys.batch() as batch:
        sealed, ids = keys.seal("e-1", ("alice@acme",), "2027-01-01T00:00:00+00:00", {"prompt": "p"}, batch)
        keys.seal("e-2", ("alice@acme",), "2027-01-01T00:00:00+00:00", {"prompt": "q"}, batch)
        assert [p.parent.name for p in batch.unsynced] == ["subjects"]  # alice's key made once
        other = SubjectKeys(tmp_path / "keys")  # another process's view: nothing committed yet
        assert other.record_key("e-1") is None
    assert other.record_key("e-1") is not None and keys.open("e-1", ["alice@acme"], ids, sealed) == {"prompt": "p"}
    with pytest.raises(RuntimeError), keys.batch() as batch:
        keys.seal("e-3", ("bob@acme",), "2027-01-01T00:00:00+00:00", {"prompt": "r"}, batch)
        raise RuntimeError("the batch fails")
    assert keys.record_key("e-3") is None and keys.records.count() == 2  # none of the failed batch's record keys
