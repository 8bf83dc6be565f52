"""The read API the sink serves for an embedded store: read-only, token-guarded, values intact."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from aiaudit.pipeline.contract.access import digest_of
from aiaudit.pipeline.errors import StoreError
from aiaudit.pipeline.store.api import API_FILE, ReadLimits, Refused, RemoteClient, StoreServer, bearer, read_statement


class Result:
    def __init__(self, names, rows):
        self.column_names, self.result_rows = names, rows


class Recording:
    """A stand-in for the sink's client: records what it is asked, answers fixed rows."""

    def __init__(self):
        self.asked = []

    def query(self, sql, parameters=None, column_formats=None):
        self.asked.append((sql, parameters, column_formats))
        return Result(["payload", "ts", "cats", "n"],
                      [(b"\xff\x00raw", datetime(2026, 11, 29, tzinfo=timezone.utc), ("a", "b"), 7)])


class Ledger:
    """A stand-in for the access log (store/access_log.AccessLog, tested on a real broker in
    tests/integration/test_access.py): keeps each record, or fails like a broker that is down."""

    def __init__(self, fail: bool = False):
        self.records, self.fail = [], fail

    def record(self, **fields):
        if self.fail:
            raise StoreError("the access record was not written (broker down): the read is refused")
        self.records.append(fields)


@pytest.fixture
def served(tmp_path):
    client = Recording()
    server = StoreServer(client, tmp_path, principal="local:tester", access=Ledger())
    server.start()
    yield client, tmp_path
    server.close()


def _serve(tmp_path, access, problem="no key"):
    server = StoreServer(Recording(), tmp_path, principal="local:tester", access=access, access_problem=problem)
    server.start()
    return server


def test_each_answer_is_recorded_first_with_who_what_how_many_and_the_digest_of_what_was_served(tmp_path):
    ledger = Ledger()
    server = _serve(tmp_path, ledger)
    try:
        remote = RemoteClient.find(tmp_path)
        remote.op = "export"
        result = remote.query("SELECT payload FROM t WHERE n = {n:UInt8}", {"n": 7})
    finally:
        server.close()
    (rec,) = ledger.records
    assert rec["principal"] == "local:tester" and rec["op"] == "export" and rec["rows"] == 1
    # The same text a read through the CLI's own client records (contract/access.statement_text).
    assert rec["what"] == 'SELECT payload FROM t WHERE n = {n:UInt8} -- {"n":"7"}'
    assert rec["digest"] == digest_of(result.result_rows)[1]  # what the reader got is what the record commits to


@pytest.mark.parametrize("op", ["Export", "x" * 40, "a b", "../x", ""])
def test_an_op_header_out_of_shape_is_recorded_as_the_store_api(tmp_path, op):
    ledger = Ledger()
    server = _serve(tmp_path, ledger)
    try:
        doc = json.loads((tmp_path / API_FILE).read_text())
        req = urllib.request.Request(doc["url"] + "/query", data=b'{"sql": "SELECT 1"}', method="POST",
                                     headers={"authorization": f"Bearer {doc['token']}", "x-aiaudit-op": op})
        urllib.request.urlopen(req, timeout=5).read()
    finally:
        server.close()
    assert [r["op"] for r in ledger.records] == ["store-api"]


@pytest.mark.parametrize("access", [None, Ledger(fail=True)], ids=["no key", "broker down"])
def test_a_read_that_cannot_be_recorded_is_not_answered(tmp_path, access):
    server = _serve(tmp_path, access, problem="no key to sign access records with")
    try:
        with pytest.raises(StoreError, match="503") as err:
            RemoteClient.find(tmp_path).query("SELECT payload FROM t")
    finally:
        server.close()
    assert "raw" not in str(err.value) and ("no key" in str(err.value) or "refused" in str(err.value))


def test_reads_come_back_with_their_types_and_the_parameters_arrive_typed(served):
    client, state = served
    remote = RemoteClient.find(state)
    since = datetime(2026, 11, 1, tzinfo=timezone.utc)
    result = remote.query("SELECT payload FROM t WHERE ts >= {since:DateTime64(6)}", {"since": since}, {"payload": "bytes"})
    assert result.column_names == ["payload", "ts", "cats", "n"]
    assert result.result_rows == [(b"\xff\x00raw", datetime(2026, 11, 29, tzinfo=timezone.utc), ["a", "b"], 7)]
    assert client.asked[-1][1] == {"since": since} and client.asked[-1][2] == {"payload": "bytes"}
    assert client.asked[-1][0].endswith("SETTINGS readonly=1, max_result_rows=100000, max_result_bytes=67108864, "
                                        "result_overflow_mode='throw', max_execution_time=30, "
                                        "timeout_overflow_mode='throw'")
    assert (state / API_FILE).stat().st_mode & 0o077 == 0  # the token is the owner's alone


@pytest.mark.parametrize("sql", ["INSERT INTO t VALUES (1)", "DROP TABLE t", "ALTER TABLE t DELETE WHERE 1",
                                 "SELECT 1; DROP TABLE t", "  OPTIMIZE TABLE t",
                                 "WITH x AS (SELECT 1) INSERT INTO aiaudit.evidence SELECT * FROM x",
                                 "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                                 "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
                                 "SELECT * FROM remote('127.0.0.1', system.one)",
                                 "SELECT 1 INTO OUTFILE '/tmp/out.txt'",
                                 "SELECT * FROM t SETTINGS readonly=0", "SELECT * FROM t SETTINGS max_result_rows=0",
                                 "SELECT * FROM t FORMAT TabSeparated",
                                 "SELECT * FROM t -- SETTINGS hidden", "SELECT * FROM t /* x */",
                                 "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')"])
def test_anything_but_a_single_read_is_refused(served, sql):
    client, state = served
    with pytest.raises(StoreError, match="403"):
        RemoteClient.find(state).query(sql)
    assert client.asked == []


def test_a_wrong_token_is_refused(served):
    client, state = served
    doc = json.loads((state / API_FILE).read_text())
    with pytest.raises(StoreError, match="401"):
        RemoteClient(doc["url"], "guess-guess-guess-guess-guess").query("SELECT 1")
    for header in (None, doc["token"], f"bearer {doc['token']}", f"Basic {doc['token']}", f"Bearer  {doc['token']}",
                   f"Bearer {doc['token']}x", "Bearer " + "A" * 5000, f"Bearer {doc['token']}\x00"):
        headers = {} if header is None else {"authorization": header}
        req = urllib.request.Request(doc["url"] + "/query", data=b'{"sql": "SELECT 1"}', method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (400, 401), header
    assert client.asked == []


def test_each_answer_names_the_principal_its_token_names(served):
    _, state = served
    doc = json.loads((state / API_FILE).read_text())
    req = urllib.request.Request(doc["url"] + "/query", data=b'{"sql": "SELECT 1"}', method="POST",
                                 headers={"authorization": f"Bearer {doc['token']}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["principal"] == "local:tester"


def test_read_statement_appends_the_engine_read_only_setting_and_the_caps():
    limits = ReadLimits(max_rows=10, max_bytes=2048, max_seconds=3)
    sql = read_statement("SELECT origin, seq FROM aiaudit.evidence WHERE origin = {o:String}", limits)
    assert sql.splitlines()[-1] == ("SETTINGS readonly=1, max_result_rows=10, max_result_bytes=2048, "
                                    "result_overflow_mode='throw', max_execution_time=3, timeout_overflow_mode='throw'")
    # a join's own null filling is the one setting a statement may end with
    assert read_statement("SELECT 1 FROM a FULL OUTER JOIN b ON 1 SETTINGS join_use_nulls = 1", limits).endswith(
        "timeout_overflow_mode='throw', join_use_nulls=1")
    with pytest.raises(Refused):
        read_statement("SELECT 1 SETTINGS join_use_nulls = 1, readonly = 0", limits)
    # ... and when an aggregation or a sort spills to disk (verify's whole-store checks), not what is read
    from aiaudit.pipeline.store.evidence import SPILL, select_emitter_shard

    served = read_statement(select_emitter_shard("db", ["o"], None, 0, 4)[0], limits)
    assert served.endswith(", max_bytes_before_external_group_by=67108864, max_bytes_before_external_sort=67108864, "
                           "max_bytes_ratio_before_external_group_by=0, max_bytes_ratio_before_external_sort=0")
    assert SPILL in select_emitter_shard("db", ["o"], None, 0, 4)[0]
    for sneaky in ("SELECT 1 SETTINGS max_bytes_before_external_sort = 1, max_result_rows = 0",
                   "SELECT 1 SETTINGS max_bytes_ratio_before_external_sort = 1",
                   "SELECT 1 SETTINGS max_bytes_before_external_group_by = 1e9"):
        with pytest.raises(Refused):
            read_statement(sneaky, limits)
    # column names that merely contain a refused word are fine
    read_statement("SELECT formatDateTime(ts, '%F') AS day, fileno FROM t", limits)
    for hostile in (None, 7, "", "   ", "SELECT 1;", "select 1 settings readonly=0", "SELECT * FROM FILE ('x')"):
        with pytest.raises(Refused):
            read_statement(hostile, limits)


@pytest.mark.parametrize("header, token", [("Bearer abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"),
                                           ("Bearer short", None), ("Bearer", None), ("", None), (None, None),
                                           ("Token abcdefghijklmnopqrstuvwxyz", None),
                                           ("Bearer abcdefghij klmnopqrstuvwxyz", None)])
def test_bearer_takes_exactly_one_shape(header, token):
    assert bearer(header) == token


def test_writes_through_the_remote_client_are_refused(served):
    with pytest.raises(StoreError, match="read-only"):
        RemoteClient.find(served[1]).insert("t", [[1]], column_names=["a"])


def test_no_api_file_means_no_remote(tmp_path):
    assert RemoteClient.find(tmp_path) is None


def test_a_hostile_request_gets_an_answer_never_a_crash(served):
    import http.client

    client, state = served
    doc = json.loads((state / API_FILE).read_text())
    host, port = doc["url"].removeprefix("http://").split(":")
    for headers, body in (({"content-length": "x"}, b""), ({"content-length": str(2 << 20)}, b"{}"),
                          ({}, b"not json")):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("POST", "/query", body=body, headers={"authorization": f"Bearer {doc['token']}", **headers})
        assert conn.getresponse().status in (400, 413)
        conn.close()
    assert client.asked == []


def test_a_refused_statement_is_recorded_as_refused(tmp_path):
    ledger = Ledger()
    server = _serve(tmp_path, ledger)
    try:
        with pytest.raises(StoreError, match="403"):
            RemoteClient.find(tmp_path).query("SELECT * FROM file('/etc/passwd', 'LineAsString')")
    finally:
        server.close()
    (rec,) = ledger.records
    assert rec["outcome"] == "refused" and rec["rows"] == 0 and "file('/etc/passwd'" in rec["what"]
