"""The console's report folders: progress written as a report is made (at most once a second),
and a report a stopped process left "running" shown, and kept, as interrupted."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from aiaudit.pipeline.console import reports


def _status(folder):
    return json.loads((folder / "status.json").read_text())


def test_progress_is_written_at_most_every_interval_and_the_end_always(tmp_path):
    status = reports.Status.start(tmp_path / "20261205T080000Z-0123abcd", since="a", until="b", message="starting")
    assert _status(status.folder)["state"] == "running" and _status(status.folder)["pid"] == os.getpid()
    assert oct(status.folder.stat().st_mode & 0o777) == "0o700"
    status.progress("ai.requests/p0: 10 record(s)")  # within the interval of the start: held
    assert _status(status.folder)["message"] == "starting"
    status.every_s = 0.0
    status.progress("ai.requests/p1: 12 record(s)" + "x" * 900)
    assert _status(status.folder)["message"].startswith("ai.requests/p1") and len(_status(status.folder)["message"]) == 500
    status.every_s = 3600.0
    status.finish("done", "22 request(s)")
    assert _status(status.folder)["state"] == "done" and _status(status.folder)["message"] == "22 request(s)"


def test_a_report_left_running_by_a_stopped_process_is_interrupted_and_offers_no_file(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    cases = {
        "20261205T080000Z-00000001": {"host": here, "pid": gone.pid},  # its process stopped
        "20261205T080000Z-00000002": {"host": here, "pid": os.getpid()},  # this process, not making it (a lost thread)
        "20261205T080000Z-00000003": {"host": here, "pid": os.getpid()},  # this process, making it
        "20261205T080000Z-00000004": {"host": "another-machine", "pid": gone.pid},  # not ours to judge
        "20261205T080000Z-00000005": {"host": here, "pid": "1; rm"},  # a status file not as written: not running
    }
    for name, owner in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "status.json").write_text(json.dumps({"state": "running", "message": "collecting", **owner}))
        (folder / "export.jsonl").write_text("half\n")
    (tmp_path / "not-a-report").mkdir()
    (tmp_path / "20261205T080000Z-00000006").mkdir()  # no status file: not listed
    shown = {r["id"]: r for r in reports.listed(tmp_path, {"20261205T080000Z-00000003"})}
    assert set(shown) == set(cases)
    states = {name: r["state"] for name, r in shown.items()}
    assert states == {"20261205T080000Z-00000001": "interrupted", "20261205T080000Z-00000002": "interrupted",
                      "20261205T080000Z-00000003": "running", "20261205T080000Z-00000004": "running",
                      "20261205T080000Z-00000005": "interrupted"}
    assert all(r["files"] == [] for r in shown.values())  # half-written files are never offered
    assert _status(tmp_path / "20261205T080000Z-00000001")["state"] == "interrupted"  # kept so
    assert shown["20261205T080000Z-00000001"]["message"] == reports.INTERRUPTED
    assert list(shown) == sorted(shown, reverse=True)  # newest first


def test_only_a_done_report_offers_its_files(tmp_path):
    folder = tmp_path / "20261205T090000Z-0000000a"
    folder.mkdir()
    (folder / "status.json").write_text(json.dumps({"state": "done", "message": "ok"}))
    for name in ("report.html", "manifest.json", "notes.txt"):
        (folder / name).write_text("x")
    assert reports.listed(tmp_path, set())[0]["files"] == ["report.html", "manifest.json"]
