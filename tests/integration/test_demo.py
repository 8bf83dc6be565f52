"""The README's first command, `aiaudit demo` (what `make demo` runs), end to end on a fresh state
folder and fresh keys, on a broker port of its own: it finishes, and the steps it reports it shows
(every input chained and stored, incidents worked, the auditor's report written and checked)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.support import free_port_pair

pytestmark = pytest.mark.integration


def test_the_demo_runs_end_to_end_on_a_fresh_state_folder(tmp_path):
    port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAUDIT_")}
    env.update({"AIAUDIT_LOCAL__STATE_DIR": str(tmp_path / "state"), "AIAUDIT_SIGNING__KEYS_DIR": str(tmp_path / "keys"),
                "AIAUDIT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "AIAUDIT_LOCAL__KAFKA_PORT": str(port),
                "AIAUDIT_LOCAL__CONTROLLER_PORT": str(port + 1)})
    done = subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", "demo"], env=env, capture_output=True,
                          text=True, timeout=900)
    out = done.stdout
    (tmp_path / "demo.log").write_text(out + done.stderr)
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "drained " in out and "did not finish" not in out, out[-3000:]
    assert "completeness shown at both edges of every chain" in out, out[-3000:]
    assert "checked offline: sealed, every figure recomputed from its export" in out
    assert (tmp_path / "state" / "report" / "manifest.json").is_file()
