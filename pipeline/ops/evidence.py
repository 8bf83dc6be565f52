"""The chain workers of every evidence kind but requests, each in a thread of one process
(`aiaudit worker evidence`; the tests run them the same way). The kinds are low-volume beside
requests, so one process holds them all; each kind still has its own consumer group, its own
chains and a transactional writer per chain, as the requests' chain worker does."""

from __future__ import annotations

import logging
import threading

from aiaudit.pipeline.chain.checkpoint import Notary
from aiaudit.pipeline.chain.kinds import KINDS, EvidenceKind
from aiaudit.pipeline.chain.record import Signer
from aiaudit.pipeline.chain.worker import ChainWorker
from aiaudit.pipeline.settings import Settings

log = logging.getLogger("aiaudit.chain")


class EvidenceChains:
    def __init__(self, settings: Settings, signer: Signer, notary: Notary | None, *, instance_id: str | None = None,
                 kinds: tuple[EvidenceKind, ...] = KINDS) -> None:
        self.settings, self.signer, self.notary, self.instance_id, self.kinds = settings, signer, notary, instance_id, kinds
        self.stop = threading.Event()
        self.failed: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.workers: list[ChainWorker] = []

    def chained(self) -> int:
        """Records chained so far by these workers."""
        return sum(w.stats["chained"] for w in self.workers)

    def _run(self, kind: str) -> None:
        try:
            worker = ChainWorker(self.settings, self.signer, notary=self.notary, kind=kind,
                                 instance_id=f"{self.instance_id}-{kind}" if self.instance_id else None)
            self.workers.append(worker)
            worker.run(self.stop)
        except BaseException as exc:  # noqa: BLE001  # reported, and the other kinds stopped
            log.error("the %s chain worker stopped: %s", kind, exc)
            self.failed.append(exc)
            self.stop.set()

    def start(self) -> "EvidenceChains":
        log.info("evidence chain workers for %s, signing with kid %s", ", ".join(k.name for k in self.kinds),
                 self.signer.kid)
        self.threads = [threading.Thread(target=self._run, args=(k.name,), name=f"chain-{k.name}", daemon=True)
                        for k in self.kinds]
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout_s: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout_s)

    def close(self, timeout_s: float = 60.0) -> None:
        self.stop.set()
        self.join(timeout_s)
