"""Invariant 6: whatever bytes arrive, decode raises EventRejected (a dead letter), never anything else."""

import random
from datetime import datetime, timezone

from aiaudit.pipeline import contract
from aiaudit.pipeline.emit.synthetic import SyntheticEvents
from aiaudit.pipeline.errors import EventRejected
from aiaudit.pipeline.jcs import canonicalize

MAX = 256 * 1024


def mutations(seed: int, n: int):
    rng = random.Random(seed)
    gen = SyntheticEvents(seed, datetime(2026, 11, 28, tzinfo=timezone.utc), "fuzz")
    for _ in range(n):
        data = bytearray(contract.encode(gen.next_event(), max_bytes=MAX))
        kind = rng.randrange(5)
        if kind == 0:  # flip bytes in the datum
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(10, len(data))
                data[i] = rng.randrange(256)
        elif kind == 1:  # truncate
            del data[rng.randrange(len(data)):]
        elif kind == 2:  # huge varint lengths / counts spliced in
            i = rng.randrange(10, len(data))
            data[i:i] = bytes([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        elif kind == 3:  # random tail
            data += rng.randbytes(rng.randint(1, 64))
        else:  # random bytes behind a valid header
            data = data[:10] + rng.randbytes(rng.randint(0, 300))
        yield bytes(data)


def test_mutated_messages_only_ever_raise_event_rejected():
    accepted = rejected = 0
    for data in mutations(7, 3000):
        try:
            event = contract.decode(data, max_bytes=MAX)
        except EventRejected as exc:
            assert exc.reason in {"malformed", "invalid", "unknown_schema", "oversized"}
            rejected += 1
        else:
            contract.check_event(event)  # whatever decodes is a valid event ...
            canonicalize(event)  # ... that the chain step can sign without failing
            accepted += 1
    assert rejected > 2000  # the mutations really were bad input
