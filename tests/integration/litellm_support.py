"""A real LiteLLM proxy (from PyPI, in its own environment: `make litellm-env`) in front of the
vendor stand-in, with aiaudit's callback, a guardrail and custom auth (tests/fixtures/litellm)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from aiaudit.pipeline.settings import Settings
from tests.integration.support import free_port_pair, settings_env

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "litellm"  # a guardrail, custom auth, and a config with both
EXAMPLE = ROOT / "examples" / "litellm"  # what docs/litellm.md runs: the callback file and a config
LITELLM = Path(os.environ.get("AIAUDIT_TEST_LITELLM", ROOT / ".venv-litellm" / "bin" / "litellm"))
ALICE, BOT = "sk-alice-7f3a9c", "sk-bot-51d2e0"  # custom_auth.py's keys
SECRETS = (b"sk-vendor-secret-0d9e8f7a", b"sk-master-secret-55aa", ALICE.encode(), BOT.encode())


class Proxy:
    """`litellm --config config.yaml` as a child process; its log in `log`."""

    def __init__(self, settings: Settings, folder: Path, vendor_url: str, *, example: bool = False,
                 env: dict[str, str] | None = None) -> None:
        """With `example`, the docs' files exactly (examples/litellm); else the fixtures' config, with
        the docs' callback file beside it."""
        assert LITELLM.exists(), f"{LITELLM} is missing: `make litellm-env` installs LiteLLM's proxy"
        folder.mkdir(parents=True, exist_ok=True)
        for f in [*EXAMPLE.iterdir(), *([] if example else FIXTURES.iterdir())]:
            shutil.copy(f, folder / f.name)
        self.folder, self.port = folder, free_port_pair()
        self.metrics_port = self.port + 1
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "proxy.log"
        self.env = {**settings_env(settings), "VENDOR_URL": vendor_url, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "AIAUDIT_LITELLM__METRICS_PORT": str(self.metrics_port), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Proxy:
        out = open(self.log, "wb")  # noqa: SIM115  # handed to the child
        self.proc = subprocess.Popen([str(LITELLM), "--config", "config.yaml", "--port", str(self.port),
                                      "--host", "127.0.0.1", "--num_workers", "1"], cwd=self.folder, env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the proxy stopped: {self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"the proxy did not start: {self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
