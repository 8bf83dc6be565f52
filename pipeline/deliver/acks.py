"""Acknowledging messages in offset order while their work finishes in any order.

The delivery agent works on several messages of a partition at once (a slow destination must not
hold the others), so their work ends out of order. Faust commits from the acknowledged offsets,
and faust-streaming 0.15's `Consumer._new_offset` takes a gap of exactly one offset after the
committed one for no gap (`min(acked) - committed > 1`), and checks nothing while the committed
offset is 0: acknowledging 11 while 10 is still in work commits past 10, and a kill -9 then loses
it. So acknowledgements are released only in offset order, per partition: a message is
acknowledged when its work and the work of every message before it in its partition are done.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol


class Ackable(Protocol):
    def ack(self) -> bool: ...


class InOrderAcks:
    """Per partition, the messages taken into work, oldest first."""

    def __init__(self) -> None:
        self._lines: dict[Any, deque[list[Any]]] = {}

    def taken(self, partition: Any, event: Ackable) -> list[Any]:
        """Note a message taken into work; returns its ticket for `done`."""
        ticket = [event, False]
        self._lines.setdefault(partition, deque()).append(ticket)
        return ticket

    def done(self, partition: Any, ticket: list[Any]) -> int:
        """Mark a message's work done and acknowledge every message at the head of its partition's
        line whose work is done; returns how many were acknowledged."""
        ticket[1] = True
        line = self._lines.get(partition)
        n = 0
        while line and line[0][1]:
            line.popleft()[0].ack()
            n += 1
        return n

    def outstanding(self) -> int:
        return sum(len(line) for line in self._lines.values())
