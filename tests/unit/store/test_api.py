"""The read API the sink serves for an embedded store: read-only, token-guarded, values intact."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from pipeline.errors import StoreError
from pipeline.store.api import API_FILE, RemoteClient, StoreServer


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


@pytest.fixture
def served(tmp_path):
    client = Recording()
    server = StoreServer(client, threading.Lock(), tmp_path)
    server.start()
    yield client, tmp_path
    server.close()


def test_reads_come_back_with_their_types_and_the_parameters_arrive_typed(served):
    client, state = served
    remote = RemoteClient.find(state)
    since = datetime(2026, 11, 1, tzinfo=timezone.utc)
    result = remote.query("SELECT payload FROM t WHERE ts >= {since:DateTime64(6)}", {"since": since}, {"payload": "bytes"})
    assert result.column_names == ["payload", "ts", "cats", "n"]
    assert result.result_rows == [(b"\xff\x00raw", datetime(2026, 11, 29, tzinfo=timezone.utc), ["a", "b"], 7)]
    assert client.asked[-1][1] == {"since": since} and client.asked[-1][2] == {"payload": "bytes"}
    assert (state / API_FILE).stat().st_mode & 0o077 == 0  # the token is the owner's alone


@pytest.mark.parametrize("sql", ["INSERT INTO t VALUES (1)", "DROP TABLE t", "ALTER TABLE t DELETE WHERE 1",
                                 "SELECT 1; DROP TABLE t", "  OPTIMIZE TABLE t"])
def test_anything_but_a_single_read_is_refused(served, sql):
    client, state = served
    with pytest.raises(StoreError, match="403"):
        RemoteClient.find(state).query(sql)
    assert client.asked == []


def test_a_wrong_token_is_refused(served):
    client, state = served
    doc = json.loads((state / API_FILE).read_text())
    with pytest.raises(StoreError, match="403"):
        RemoteClient(doc["url"], "guess").query("SELECT 1")
    req = urllib.request.Request(doc["url"] + "/query", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=5)
    assert client.asked == []


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
