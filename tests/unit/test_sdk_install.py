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
               "from aiaudit.pipeline.contract.emitter_keys import new_emitter_key\n"
               "from aiaudit.pipeline.emit.synthetic import SyntheticEvents\n"
               "from aiaudit.pipeline.settings import EmitterSettings, KafkaSettings\n"
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


def test_an_auditor_verifies_an_export_on_the_light_install(tmp_path):
    """`aiaudit verify --export FILE --trust FILE` needs no server library; a command that does
    names the extra to install in one line, never a traceback."""
    import base64
    import json

    from tests.unit.export.test_format import OP_PUB, SIGNER, _sample_lines
    from tests.unit.verify.test_tree import CP_PUB

    export = tmp_path / "export.jsonl"
    export.write_bytes(b"\n".join(_sample_lines()) + b"\n")
    jwks = {"keys": [SIGNER.jwk()]}
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"record_keys": jwks, "checkpoint_keys": [base64.b64encode(CP_PUB).decode()],
                                 "operator_keys": [base64.b64encode(OP_PUB).decode()]}))
    run = ("import sys\n"
           f"for name in {SERVER_ONLY!r}: sys.modules[name] = None\n"
           "from aiaudit.pipeline.cli import main\n"
           "sys.exit(main(sys.argv[1:]))\n")
    ok = subprocess.run([sys.executable, "-c", run, "verify", "--export", str(export), "--trust", str(trust),
                         "--as-of", "2026-11-29T00:00:00Z", "--no-tail-rule"],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0 and "All chains valid" in ok.stdout, ok.stdout[-1500:] + ok.stderr[-1500:]
    needs = subprocess.run([sys.executable, "-c", run, "query"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert needs.returncode == 2 and "pip install 'aiaudit[server]'" in needs.stderr, needs.stderr[-1500:]
    assert "Traceback" not in needs.stderr
    bare = subprocess.run([sys.executable, "-c", run, "verify", "--export", str(export)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**__import__("os").environ,
                                                     "AIAUDIT_SIGNING__KEYS_DIR": str(tmp_path / "none")})
    assert bare.returncode == 2 and "--trust FILE" in bare.stderr and "Traceback" not in bare.stderr, bare.stderr


def test_the_wheel_installs_one_import_name_and_no_generic_ones(tmp_path):
    """`pip install aiaudit` adds the `aiaudit` import package and nothing named `pipeline`,
    `schemas`, `detectors` or `infra` that would collide with an application's own modules."""
    import os
    import shutil
    import venv

    # Built from a copy of the sources (links kept), so a stale build/ of a working copy cannot leak in.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".aiaudit", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "lib", "tests"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("aiaudit-*.whl")
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    before = set(os.listdir(site))
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    added = sorted(set(os.listdir(site)) - before)
    assert [name for name in added if not name.endswith(".dist-info")] == ["aiaudit"], added
    probe = ("import importlib.util as u, aiaudit.schemas as s\n"
             "print([n for n in ('pipeline', 'schemas', 'detectors', 'infra') if u.find_spec(n)])\n"
             "print(s.__file__.startswith(%r), len(s.event_schema_text()) > 100)\n" % str(site))
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "True True"], out.stdout
    refused = subprocess.run([str(python), "-c", "import pipeline"], capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 1 and "No module named 'pipeline'" in refused.stderr
