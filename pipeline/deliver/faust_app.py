"""Faust, with the three changes the delivery agent needs (and why).

1. read_committed: the scorer writes findings in Kafka transactions; Faust's consumer reads
   read_uncommitted, which would deliver findings of aborted transactions.
2. Recovery that seeks before it resumes, and seeks everywhere. Faust's own
   `Recovery.on_recovery_completed` resumes the stream partitions and only then seeks them to
   their committed offsets; meanwhile the consumer has fetched records during table recovery that
   the agents never saw. aiokafka's `seek_to_committed` seeks only partitions with a committed
   offset above 0, so where nothing was committed yet (a worker killed in its first seconds) the
   position stays past those records and they are never delivered: the restarted agent sat idle
   with the whole backlog fetched and dropped (tests/integration/test_delivery_agent.py found it,
   two restarts in three). Here the stream partitions are sought first (committed offset, or the
   partition's start where none was committed, as a new group starts), then resumed.
3. A fetch whose records are not all handed on seeks back to them (`_Consumer.getmany`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

log = logging.getLogger("aiaudit.deliver")


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # aiokafka hands it to its fetcher on start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's getmany, except that a record it fetched and does not hand on is fetched again.

        Faust's own drops the rest of a fetch when the flow stops or the generation changes
        mid-fetch, and every record of a partition not active when the fetch began (a stream
        partition paused during a rebalance's table recovery), while the consumer's position has
        already moved past them; nothing reads them again unless a later rebalance seeks back
        (tests/integration/test_delivery_broker_down.py: findings published while the agent
        recovered from a broker outage were never delivered). Here each partition with records
        not handed on is sought back to the first of them."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            await self.perform_seek()  # as Faust's: the flow stopped, every partition back to its commit
            return
        unread: dict[TP, int] = {}  # partition -> the first offset fetched and not handed on
        try:
            for tp, record in self.scheduler.iterate(records):
                if tp in unread:
                    continue  # after one record is held back, its partition's later ones are too
                if not self.flow_active or self.app.consumer_generation_id != generation_id or not (
                        active_partitions is None or tp in active_partitions or tp in self._buffered_partitions):
                    unread[tp] = record.offset
                    continue
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, self._to_message(tp, record)
        finally:
            for tp, offset in sorted(unread.items(), key=lambda kv: str(kv[0])):
                if tp in self.assignment():
                    log.info("%s: records from offset %d were fetched while the partition was paused or the group "
                             "rebalancing; they are fetched again", tp, offset)
                    await self.seek(tp, offset)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class SeekFirstRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        pending = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                      self.standbys_for_table[table]))
                   for table in self.tables.values()]
        if pending:
            await asyncio.wait(pending)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if streams:
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
            committed = consumer._committed_offset  # type: ignore[attr-defined]  # faust's Consumer, not in ConsumerT
            fresh = sorted((tp for tp in streams if not committed.get(tp)), key=str)
            if fresh:
                for tp, offset in (await consumer.earliest_offsets(*fresh)).items():
                    await consumer.seek(tp, offset)
            self.log.info("sought %d stream partitions (%d with no committed offset: from their start); resuming them",
                          len(streams), len(fresh))
        consumer.resume_partitions(streams)
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await self.app._fetcher.maybe_start()  # type: ignore[attr-defined]  # faust.App's, not in AppT (as in faust's own)
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class _TableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class App(faust.App):
    """faust.App reading read_committed, with SeekFirstRecovery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, TableManager=_TableManager, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
