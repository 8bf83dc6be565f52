"""The SDK installs without the server side: `from aiaudit import Emitter` needs none of it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("sklearn", "faust", "chdb", "clickhouse_connect", "uvicorn", "starlette", "aiohttp", "jwt", "yaml",
               "nacl", "numpy")


def test_the_light_install_lists_no_server_library():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(meta["dependencies"]).lower()
    for name in ("scikit-learn", "faust", "chdb", "clickhouse", "uvicorn", "starlette", "aiohttp", "pyjwt", "pyyaml",
                 "pynacl", "numpy"):
        assert name not in base, name
    assert "scikit-learn" in " ".join(meta["optional-dependencies"]["server"])


def test_the_sdk_imports_and_validates_with_every_server_library_missing():
    blocker = ("import sys\n"
               f"for name in {SERVER_ONLY!r}: sys.modules[name] = None  # importing any of them now fails\n"
               "import aiaudit\n"
               "from aiaudit import Emitter, Settings, InvalidEvent, validate_event\n"
               "try:\n    validate_event({'event_id': 'x'})\nexcept InvalidEvent as e:\n    print('refused:', e)\n"
               "bad = sorted(set(m.split('.')[0] for m in sys.modules if sys.modules[m] is not None) "
               f"& set({SERVER_ONLY!r}))\n"
               "print('server modules loaded:', bad)\n")
    out = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: missing required field(s)" in out.stdout and "server modules loaded: []" in out.stdout
