"""Worker processes: start one per role, stop them, stop on a signal (I/O edge).

`aiaudit worker all`, the demo and the benches run the stages as child processes through
these functions, so a worker is always started and stopped the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("aiaudit")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a worker's main loop."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def start_worker(role: str, *, instance_id: str | None = None, log_file: Path | None = None,
                 env: dict[str, str] | None = None, verbose: bool = False,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """`aiaudit worker <role>` as a child process, its output appended to log_file (or inherited).
    instance_id is the consumer group member id of the workers that have one (chain, score)."""
    argv = [sys.executable, "-m", "aiaudit.pipeline.cli", "worker", role, *(["-v"] if verbose else [])]
    if instance_id and role in ("chain", "evidence", "score"):
        argv += ["--instance-id", instance_id]
    argv += extra  # e.g. --metrics-port
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115  # handed to the child process
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if out else None,
                                env=env if env is not None else os.environ.copy())
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM (the worker finishes its batch), then SIGKILL after timeout_s. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def supervise(procs: list[subprocess.Popen[bytes]], stop: threading.Event) -> int:
    """Wait until `stop` is set or any worker exits, then stop them all. Returns the worst exit code."""
    while not stop.wait(0.5):
        if any(p.poll() is not None for p in procs):
            exited = [p for p in procs if p.poll() is not None]
            log.error("a worker exited (code %s); stopping the others", exited[0].returncode)
            break
    return max(stop_worker(p) for p in procs)
