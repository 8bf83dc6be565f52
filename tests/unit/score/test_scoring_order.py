"""The order in which the scoring worker scores a fetch's partitions (pure: no broker)."""

from concurrent.futures import Future

from aiaudit.pipeline.score.step import BatchStates
from aiaudit.pipeline.score.worker import Batch, PartitionScorer, scoring_order


def _part(partition: int, handed_over: int | None = None, done: bool = False) -> PartitionScorer:
    part = PartitionScorer(partition, producer=None, states={}, next_offset=0)  # type: ignore[arg-type]  # never produced to here
    if handed_over is not None:
        future: Future = Future()
        if done:
            future.set_result(None)
        part.inflight = (Batch(part, BatchStates({}), [], 0, "m", handed_over=handed_over), future)
    return part


def test_partitions_still_committing_go_last_and_the_latest_handed_over_goes_last_of_all():
    parts = {0: _part(0, handed_over=7), 1: _part(1, handed_over=3), 2: _part(2, handed_over=9, done=True), 3: _part(3)}
    # 2 (its commit is over) and 3 (nothing in flight) first, in fetch order; then 1 (handed over at 3), then 0 (at 7).
    assert scoring_order([0, 1, 2, 3], parts) == [2, 3, 1, 0]
    assert scoring_order([3, 2, 0], parts) == [3, 2, 0]


def test_a_partition_no_longer_held_is_not_waited_for():
    # Revoked between the fetch and the scoring: _process skips it; its place in the order does not matter.
    assert scoring_order([5, 0], {0: _part(0, handed_over=1)}) == [5, 0]
