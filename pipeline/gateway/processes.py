"""`aiaudit gateway serve --workers N`: N gateway processes on one port, kept running.

One gateway process uses one core at most (its Python runs one thread at a time). Each process here
listens on a socket of its own bound with SO_REUSEPORT, so the kernel spreads new connections
across them evenly; with one listening socket shared (uvicorn's `--workers`), the first process
awake accepted a burst of connections whole and one process did two thirds of the work. Each builds
the app from the environment (app.py app_from_environment): its own emitter id, numbered from 0,
its own content keeper and vendor connections. A process that dies is started again; one that
cannot start (a file or the port at fault: exit STARTUP_FAILURE) stops them all, since a restart
would fail the same way. SIGTERM or SIGINT stops them gracefully (each drains its evidence).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger("aiaudit.gateway")

STARTUP_FAILURE = 3  # uvicorn's exit code for an app that could not start; ours for a port that could not be bound
STOP_GRACE_S = 30.0
RESTART_PAUSE_S = 1.0  # between a process's death and its replacement: a crash loop does not spin


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket of this process's own in the port's SO_REUSEPORT group. Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def run_one(host: str, port: int) -> None:
    """One gateway process (the target each spawned process runs)."""
    import sys

    import uvicorn

    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"aiaudit: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config("aiaudit.pipeline.gateway.app:app_from_environment", factory=True, host=host, port=port,
                            log_level="warning", loop="uvloop", http="httptools", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    def __init__(self, workers: int, host: str, port: int) -> None:
        self.workers, self.host, self.port = workers, host, port
        self._context = multiprocessing.get_context("spawn")  # a fresh interpreter: no broker client forked
        self._stop = threading.Event()
        self.processes: list[BaseProcess] = []

    def _start(self) -> BaseProcess:
        process = self._context.Process(target=run_one, args=(self.host, self.port), name="aiaudit-gateway",
                                        daemon=False)
        process.start()
        return process

    def _check_port_free(self) -> None:
        """OSError when anything listens on the port. Bound without SO_REUSEPORT: a gateway already
        running there (its sockets in a SO_REUSEPORT group) refuses this one, which would otherwise
        join the group and take half its connections."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no listener
            probe.bind((self.host, self.port))

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        """Until SIGTERM or SIGINT (0), or a process that cannot start (1)."""
        self._check_port_free()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.processes = [self._start() for _ in range(self.workers)]
        failed = False
        try:
            while not self._stop.wait(0.5):
                for i, process in enumerate(self.processes):
                    if process.is_alive():
                        continue
                    process.join()
                    if process.exitcode == STARTUP_FAILURE:
                        log.error("a gateway process could not start (exit %d): stopping", process.exitcode)
                        failed = True
                        self._stop.set()
                        break
                    log.warning("gateway process %s ended (exit %s): starting another", process.pid, process.exitcode)
                    time.sleep(RESTART_PAUSE_S)
                    self.processes[i] = self._start()
        finally:
            self._stop_all()
        return 1 if failed else 0

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: uvicorn shuts down, the app's evidence drained
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("gateway process %s did not stop within %.0f s: killed", process.pid, STOP_GRACE_S)
                process.kill()
                process.join()
