"""The client the CLI reads through when it opens the store itself: every statement recorded with
what it served, a stream when it ends; writes pass (the witness submitter stores cosignatures).
The access log is a stand-in here; tests/integration/test_access.py writes real records."""

from __future__ import annotations

from contextlib import contextmanager

from aiaudit.pipeline.contract.access import digest_of
from aiaudit.pipeline.store.access_log import RecordedClient


class Result:
    def __init__(self, rows):
        self.column_names, self.result_rows = ["n"], rows


class Store:
    def __init__(self):
        self.inserted = []

    def query(self, sql, parameters=None, **_):
        return Result([(1,), (2,)])

    @contextmanager
    def query_row_block_stream(self, sql, parameters=None, **_):
        yield iter([[(b"a", 1)], [(b"b", 2), (b"c", 3)]])

    def command(self, sql, parameters=None, **_):
        return 1

    def insert(self, table, rows, column_names=None):
        self.inserted.append((table, rows))


class Ledger:
    def __init__(self):
        self.records = []

    def record(self, **fields):
        self.records.append(fields)


def test_each_statement_is_recorded_with_the_rows_it_served():
    ledger, backing = Ledger(), Store()
    client = RecordedClient(backing, ledger, "export")
    assert client.query("SELECT n FROM t WHERE a = {a:String}", {"a": "x"}).result_rows == [(1,), (2,)]
    with client.query_row_block_stream("SELECT p, n FROM t") as blocks:
        assert ledger.records[1:] == []  # a stream is recorded when it ends, not before
        seen = [row for block in blocks for row in block]
    assert client.command("EXISTS TABLE t") == 1
    first, stream, command = ledger.records
    assert first == {"op": "export", "what": 'SELECT n FROM t WHERE a = {a:String} -- {"a":"x"}', "rows": 2,
                     "digest": digest_of([(1,), (2,)])[1]}
    assert stream["rows"] == 3 and stream["digest"] == digest_of(seen)[1]
    assert command["rows"] == 1 and command["what"] == "EXISTS TABLE t"


def test_writes_pass_through_unrecorded():
    ledger, backing = Ledger(), Store()
    RecordedClient(backing, ledger, "witness").insert("db.cosignatures", [[1]], column_names=["x"])
    assert backing.inserted == [("db.cosignatures", [[1]])] and ledger.records == []
