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
               # and it signs: an emitter key made and an event signed and queued, no server library loaded
               "import tempfile, pathlib, datetime\n"
               "from pipeline.contract.emitter_keys import new_emitter_key\n"
               "from pipeline.emit.synthetic import SyntheticEvents\n"
               "from pipeline.settings import EmitterSettings, KafkaSettings\n"
               "d = pathlib.Path(tempfile.mkdtemp())\n"
               "key, kid, _ = new_emitter_key(d / 'emitters', 'billing', d / 'emitters' / 'jwks.json')\n"
               "e = Emitter(Settings(kafka=KafkaSettings(bootstrap_servers='127.0.0.1:1'), emitter=EmitterSettings(key_file=key)))\n"
               "e.emit(SyntheticEvents(1, datetime.datetime.now(datetime.timezone.utc), 'x').next_event())\n"
               "print('signed by', e.signer_kid == kid, e.pending())\n"
               "bad = sorted(set(m.split('.')[0] for m in sys.modules if sys.modules[m] is not None) "
               f"& set({SERVER_ONLY!r}))\n"
               "print('server modules loaded:', bad)\n")
    out = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: missing required field(s)" in out.stdout and "server modules loaded: []" in out.stdout
    assert "signed by True 1" in out.stdout
