"""Every `aiaudit …` command the README and docs/ show is run as written against a real store.

The commands are collected from the docs themselves (inline code and code blocks): a synopsis
with alternatives (`ack|resolve`) is run once per alternative, optional parts (`[--json]`) are
left out, and placeholders (`FILE`, `UID`, `NAME`, `…`) get a real value of this store from one
table below. Servers and workers are started, probed and stopped. A command that needs what this
store lacks is listed in NOT_RUN with the reason and the test that runs it instead, and a command
the docs show that this test neither runs nor lists fails the test: a new doc line cannot escape.
A `--help` run would not do: the `keys emitter` bug sat in the command's handler.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from aiaudit.pipeline import store
from aiaudit.pipeline.gateway.policy import bundle_message, parse_policy
from aiaudit.pipeline.kafka import config as kafka_config
from tests.integration.support import ChainWorkers, emit_synthetic, settings_env, sink_until_drained

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Shown in the docs, run elsewhere (the reason, and where).
NOT_RUN = {
    "aiaudit console account add ada --role auditor": "asks for the password at the terminal: "
                                                       "tests/integration/test_console.py signs in with accounts "
                                                       "made by the same code",
    "aiaudit otlp serve": "runs until stopped: tests/integration/test_otlp.py serves the same app to the official "
                          "OpenTelemetry SDK and runs docs/otlp.md's walkthrough, which starts it as written",
    "aiaudit console serve": "runs until stopped: tests/integration/test_console.py serves the same app and drives it "
                             "with Chromium",
    "aiaudit demo": "the whole demo (README's first command): tests/integration/test_demo.py runs it",
    "aiaudit demo --keep-running": "the whole demo, leaving the broker up: tests/integration/test_demo.py runs the demo",
    "aiaudit infra up": "starts the project's own broker on the default port; the tests' broker is started by the "
                        "same LocalKafka code (tests/integration/conftest.py)",
    "aiaudit infra down": "stops the project's own broker (see infra up)",
    "aiaudit infra status": "reads the project's own broker (see infra up)",
    "aiaudit detect train": "needs two weeks of labelled traffic: tests/integration/test_scoring.py trains through "
                            "the same code",
    "aiaudit detect promote --version V": "needs a trained model: tests/integration/test_scoring.py",
    "aiaudit detect evaluate": "minutes of CPU on the held-out families: bench/score_bench.py and "
                               "tests/unit/detectors",
    "aiaudit worker score": "runs until stopped (with the rules only until a model is promoted): "
                            "tests/integration/test_scoring.py runs it",
    "aiaudit worker all": "chain and sink as child processes: each is probed here on its own",
    "aiaudit worker deliver": "needs a destinations file and a receiver: tests/integration/test_delivery_agent.py",
    "aiaudit witness serve --config witness.yaml": "tests/integration/test_witness.py serves a witness from a config",
    "aiaudit witness submit --url U --witness-key VKEY": "needs a running witness: tests/integration/test_witness.py",
    "aiaudit witness submit --url U --witness-key VKEY --every 60": "needs a running witness, and runs until stopped: "
                                                                    "tests/integration/test_witness.py",
    "aiaudit verify --witness U --witness-key VKEY": "needs a running witness: tests/integration/test_witness.py",
    "aiaudit alerts redeliver --by NAME": "needs dead-lettered deliveries: tests/integration/test_delivery_redrive.py",
    "aiaudit alerts redeliver --destination soc-webhook --by soc-analyst-1 --dry-run":
        "needs dead-lettered deliveries: tests/integration/test_delivery_redrive.py (the dry run too)",
    "aiaudit alerts redeliver --destination soc-webhook --by soc-analyst-1":
        "needs dead-lettered deliveries: tests/integration/test_delivery_redrive.py",
    "aiaudit alerts redeliver FINDING_UID --by soc-analyst-1":
        "needs dead-lettered deliveries: tests/integration/test_delivery_redrive.py",
    "aiaudit content show 7d0c1e54-2f1a-4c1e-9a51-4a1b2c3d4e5f": "needs content a gateway kept: "
                                                                 "tests/integration/test_erasure.py",
    "aiaudit content show EVENT_ID": "needs content a gateway kept: tests/integration/test_erasure.py",
    "aiaudit gateway serve": "tests/integration/test_gateway.py serves the gateway with a config and a vendor",
    "aiaudit gateway serve --metrics-port 9410": "the gateway with its metrics: tests/integration/test_gateway.py "
                                                 "serves it and reads the metrics over HTTP",
    "aiaudit gateway serve --workers N": "serves until stopped: tests/integration/test_gateway_workers.py runs it with "
                                         "two processes, their metrics, and one killed",
    "aiaudit signer serve DIR": "serves until stopped: tests/integration/test_signer.py runs it with chain workers "
                                "(and kills it)",
    # Named in prose without their required options; the full forms the docs show are run.
    "aiaudit detect promote": "prose; `detect promote --version V` needs a trained model (above)",
    "aiaudit detect check-rules": "prose; `detect check-rules examples/rules.yaml` is run",
    "aiaudit gateway keygen": "prose; `gateway keygen --id I --role R` is run",
    "aiaudit proof inclusion": "prose; `proof inclusion --origin O --seq N` is run",
    "aiaudit witness keygen": "prose; `witness keygen --name … --key-file …` is run",
    "aiaudit witness submit": "prose; needs a running witness (above)",
    "aiaudit witness serve": "prose; needs a config (above)",
    "aiaudit signer serve": "prose; `signer serve DIR` serves until stopped (above)",
    "aiaudit alerts redeliver": "prose; `alerts redeliver --by NAME` needs dead-lettered deliveries (above)",
    "aiaudit erase": "prose; `erase --subject ID --by NAME --reason TEXT` and the other full forms are run",
    "aiaudit erase --expired": "prose; `erase --expired --by NAME` is run",
    "aiaudit erase --subject": "prose; `erase --subject ID --by NAME --reason TEXT` is run",
    "aiaudit content show": "prose; needs content a gateway kept: tests/integration/test_erasure.py",
    "aiaudit report": "prose; `report --since TIME --until TIME --out DIR` is run, then `verify --report DIR`",
}

# Placeholder -> value; {store} values are filled from the store this test builds.
VALUES = {
    "--actor": "bob@acme.example", "--since": "2026-01-01", "--until": "now", "--vendor": "openai",
    "--model": "gpt-4o", "--decision": "allow", "--classification": "internal", "--severity": "high",
    "--status": "open", "--detector": "request_burst", "--workers": "1", "--max-age": "30d", "--as-of": "now",
    "--id": "svc-docs", "--role": "engineer", "--type": "agent", "--on-behalf-of": "alice@acme.example",
    "--event-id": "docs-no-such-id", "--by": "docs-test", "--subject": "docs-subject@acme.example", "--reason": "docs test", "--every": "0", "--name": "docs-witness", "--synthetic": "20", "--policy-version": "v1",
}


def documented() -> list[str]:
    """Every `aiaudit …` command line the docs show: inline code spans and code-block lines."""
    found: list[str] = []
    for doc in DOCS:
        text = doc.read_text()
        # Shell blocks (and blocks that name no language): a Python or YAML line that starts with
        # `aiaudit` (a variable, a key) is not a command.
        for lang, block in re.findall(r"```([a-z]*)\n(.*?)```", text, re.DOTALL):
            if lang not in ("", "sh", "bash"):
                continue
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.strip().removeprefix("$ ").split("  #")[0].strip()
                if line.startswith("aiaudit ") and "──" not in line:
                    found.append(line)
        for span in re.findall(r"`(aiaudit [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
            found.append(span.replace("\\|", "|"))
    return sorted(set(found))


def expand(line: str) -> list[str]:
    """The runs a documented line stands for: optional groups left out, alternatives each once."""
    line = line.replace("…", "…").rstrip("\\ ").strip().removesuffix("&").strip()  # a walkthrough's background job
    # [a|b|c] without options is a choice of one (a required word); any other [...] is optional.
    line = re.sub(r"\[([\w|-]+\|[\w|-]+)\]", r"\1", line)
    while re.search(r"\[[^\[\]]*\]", line):
        line = re.sub(r"\s*\[[^\[\]]*\]", "", line)
    words = [w for w in shlex.split(line) if w not in ("\\",)]
    options = [w.split("|") if "|" in w and not w.startswith("-") else [w] for w in words]
    return sorted({shlex.join(c) for c in itertools.product(*options)})


def _value(flag: str, word: str, facts: dict[str, str]) -> str:
    if flag in VALUES:
        value = VALUES[flag]
        return facts["now"] if value == "now" else value
    raise KeyError(f"no value for {flag} {word}")


def concrete(run: str, facts: dict[str, str], tmp: Path) -> list[str]:
    """argv for one run, its placeholders filled in."""
    words = shlex.split(run)[1:]
    out: list[str] = []
    for i, w in enumerate(words):
        prev = out[-1] if out else ""
        placeholder = w in ("…", "…") or (w.isupper() and len(w) > 0 and not w.startswith("-")) or \
            w in ("3f0c…", "alice@…", "billing-service", "jwk.json", "OLD_KID", "witness.yaml", "./keys", "trust.json") or \
            w.startswith("examples/") or w.endswith(".jsonl") or (prev in ("--actor", "--by") and "@" in w)
        if not placeholder:
            out.append(w.replace("aiaudit.", f"{facts['db']}.") if words[0] == "sql" else w)
            continue
        key = (words[0], words[1] if len(words) > 1 else "", prev, w)
        if w.startswith("examples/"):  # the repository's examples, wherever the test runs
            out.append(str(ROOT / w))
        elif w.endswith(".jsonl") and prev in ("--out", "--export"):  # one file, written then read
            out.append(str(tmp / w))
        elif prev == "--actor":
            out.append(VALUES["--actor"])
        elif prev == "--by" and words[0] in ("erase", "hold"):  # signed with the test's analyst key: its name
            out.append("soc-analyst-1")
        elif prev == "--key-file":
            out.append(str(tmp / f"witness-{len(list(tmp.iterdir()))}.key"))
        elif prev == "--until" and words[0] == "report":  # a period that has ended (the store's records are of T0)
            out.append("2026-12-01")
        elif prev.startswith("--") and prev in VALUES:
            out.append(_value(prev, w, facts))
        elif w == "UID" and words[0] == "incidents":
            out.append(facts["incident"])
        elif w in ("UID", "3f0c…"):
            out.append(facts["uid"])
        elif w in ("FILE", "F") and prev == "--export":
            out.append(facts["export"])
        elif w in ("FILE", "F") and prev == "--out":
            out.append(str(tmp / f"out-{len(list(tmp.iterdir()))}.jsonl"))
        elif w in ("FILE", "F") and prev in ("--file",):
            out.append(facts["policy_file"])
        elif w == "FILE" and prev == "--state":
            out.append(str(tmp / "monitor-state.json"))
        elif w == "trust.json" and prev == "--out":
            out.append(str(tmp / f"trust-{len(list(tmp.iterdir()))}.json"))
        elif w == "trust.json" or (w == "FILE" and prev == "--trust"):
            out.append(facts["trust"])
        elif w == "NAME" and words[:3] in (["keys", "analyst", "new"], ["keys", "analyst", "add"]):
            out.append(f"docs-analyst-{len(list(tmp.iterdir()))}")
        elif w == "KID" and words[:3] == ["keys", "analyst", "retire"]:
            out.append(facts["analyst_kid"])
        elif w in ("NAME", "billing-service") and words[:3] == ["keys", "emitter", "new"]:
            out.append(f"docs-{len(list(tmp.iterdir()))}")
        elif w == "billing-service" and words[:3] == ["keys", "emitter", "add"]:
            out.append("docs-added")
        elif w == "NAME" and words[:2] == ["otlp", "sender"]:  # added, listed, then removed (sorted runs)
            out.append("docs-sender")
        elif w == "jwk.json":
            out.append(facts["jwk"])
        elif w in ("KID", "OLD_KID"):
            out.append(facts["kid"])
        elif w == "DIR" and (words[0], prev) in (("report", "--out"), ("verify", "--report")):
            out.append(str(tmp / "report-pack"))  # written by `report`, then checked by `verify --report`
        elif w in ("DIR", "./keys"):
            out.append(str(tmp / f"dir-{len(list(tmp.iterdir()))}"))
        elif w == "V" and prev == "--version":
            out.append(facts["policy_version"])
        elif w == "O":
            out.append(facts["origin"])
        elif w in ("N", "A", "B", "S"):
            out.append({"N": "3", "A": "2", "B": facts["size"], "S": facts["size"]}[w])
        elif w in ("I", "R", "P"):
            out.append({"I": "svc-docs", "R": "engineer", "P": "alice@acme.example"}[w])
        elif w == "alice@…":
            out.append("alice@acme.example")
        else:
            raise KeyError(f"no value for {w!r} in {run!r} ({key})")
    return out


def _policy(tmp: Path) -> tuple[Path, object]:
    text = (ROOT / "examples" / "gateway" / "policy.yaml").read_text()
    path = tmp / "policy.yaml"
    path.write_text(text)
    return path, parse_policy(text)


def test_every_documented_command_runs_as_written(settings, client, tmp_path):
    # The store: 300 chained records, a published policy bundle, alerts, and an emitter key to retire.
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_synthetic(settings, 300, emitter_id="edge-docs", seed=5)
        policy_file, policy = _policy(tmp_path)
        raw = Producer(kafka_config.producer(settings))
        raw.produce(settings.kafka.policies_topic, key=policy.version.encode(),
                    value=orjson.dumps(bundle_message(policy, loaded_at=datetime.now(UTC).isoformat(),
                                                      gateway_id="docs")))
        assert raw.flush(30) == 0
        time.sleep(settings.chain.checkpoint_interval_s + 1.5)
        sink_until_drained(settings, client)
    db = store.database(settings)
    origin, size = client.query(f"SELECT origin, max(seq) + 1 FROM {db}.evidence GROUP BY origin ORDER BY origin "
                                "LIMIT 1").result_rows[0]
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    # Findings and an incident as the scoring worker writes them: to their topics, chained, then sunk
    # (the tables people read hold only chained evidence; verify holds them to it).
    incident = _incident(origin)
    raw = Producer(kafka_config.producer(settings))
    for i in range(3):
        raw.produce(settings.kafka.alerts_topic, value=orjson.dumps({
            "finding_info": {"uid": f"docs-uid-{i}", "desc": "docs", "analytic": {"version": "m1"}},
            "time": int(t0.timestamp() * 1000), "severity": "High", "actor": {"user": {"uid": "bob@acme.example"}},
            "unmapped": {"chain": {"origin": origin, "seq": i, "leaf_hash": "00"}, "score": 0.9,
                         "detections": [{"detector": "request_burst"}]}}))
    raw.produce(settings.kafka.incidents_topic, value=orjson.dumps(incident))
    assert raw.flush(30) == 0
    sink_until_drained(settings, client)
    client.close()
    env = settings_env(settings)

    def aiaudit(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiaudit.pipeline.cli", *argv], capture_output=True, text=True,
                              env=env, timeout=timeout, cwd=tmp_path)  # where policy.yaml is, as the docs assume

    tmp = tmp_path / "runs"
    tmp.mkdir()
    export = tmp_path / "docs-export.jsonl"
    assert aiaudit("export", "--out", str(export)).returncode == 0
    trust = tmp_path / "trust.json"
    assert aiaudit("trust", "init", "--out", str(trust)).returncode == 0
    made = aiaudit("keys", "emitter", "new", "docs-old", "--no-register", "--dir", str(tmp_path / "elsewhere"))
    assert made.returncode == 0, made.stderr
    jwk = tmp_path / "jwk.json"
    jwk.write_text(made.stdout.strip().splitlines()[-1])
    registered = aiaudit("keys", "emitter", "new", "docs-retiring")
    kid = registered.stdout.split()[3]
    analyst = aiaudit("keys", "analyst", "new", "docs-retiring-analyst")
    assert analyst.returncode == 0, analyst.stderr
    facts = {"analyst_kid": analyst.stdout.split()[3], "uid": "docs-uid-0", "incident": incident["finding_info_list"][0]["uid"], "export": str(export), "trust": str(trust), "jwk": str(jwk), "kid": kid,
             "origin": str(origin), "size": str(size), "policy_version": policy.version,
             "policy_file": str(policy_file), "db": db, "now": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    lines = documented()
    assert len(lines) >= 40, lines  # the collector reads the docs (a broken one would pass vacuously)
    failures, ran, skipped = [], 0, set()
    for run in sorted({r for line in lines for r in expand(line)}):
        if run in NOT_RUN:
            skipped.add(run)
            continue
        if run.startswith("aiaudit worker "):
            ran += 1
            problem = _probe_worker(run.split()[2], env, tmp)
            if problem:
                failures.append(f"{run}: {problem}")
            continue
        try:
            argv = concrete(run, facts, tmp)
        except KeyError as exc:
            failures.append(f"{run}: the test has no value for a placeholder ({exc}): add it to VALUES")
            continue
        if argv[:1] == ["alerts"] and len(argv) == 2 and argv[1] in ("ack", "resolve", "reopen", "history"):
            argv += [facts["uid"]]  # signed with the test's analyst key (AIAUDIT_SIGNING__ANALYST_KEY_FILE)
        if argv[:1] == ["incidents"] and len(argv) == 2 and argv[1] in ("show", "ack", "resolve", "reopen", "history"):
            argv += [facts["incident"]]
        ran += 1
        if argv[:3] == ["keys", "operator", "new"]:  # one exists already (it sealed the export): a new folder
            env["AIAUDIT_SIGNING__OPERATOR_KEY_FILE"] = str(tmp / "operator-new" / "operator.key")
        done = aiaudit(*argv)
        env.pop("AIAUDIT_SIGNING__OPERATOR_KEY_FILE", None)
        if done.returncode != 0 or "Traceback" in done.stderr:
            failures.append(f"{run} -> aiaudit {' '.join(argv)}: exit {done.returncode}: "
                            f"{done.stderr.strip()[-300:]} {done.stdout.strip()[:900]}")
    assert ran >= 40, (ran, sorted(skipped))
    assert not failures, "\n".join(failures)
    assert set(NOT_RUN) - skipped == set(), f"NOT_RUN lists commands the docs no longer show: {set(NOT_RUN) - skipped}"


def _incident(origin: str) -> dict:
    """An incident of bob's three request bursts, as the scoring worker writes it."""
    from aiaudit.detectors.features import IdentityState
    from aiaudit.pipeline.score.incidents import group
    from aiaudit.pipeline.score.ocsf import incident_finding
    from aiaudit.pipeline.score.step import Scored

    at = (datetime.now(UTC) - timedelta(minutes=5)).timestamp()
    finding = {"actor": {"user": {"uid": "bob@acme.example", "type": "workforce"}}, "finding_info": {"uid": "docs-uid-0"},
               "unmapped": {"chain": {"origin": origin, "seq": 0, "leaf_hash": "00"}, "route": "chat"}}
    scored = [Scored(origin, i, "00", "bob@acme.example", "", 0.8, "high", "m1", finding, at + i,
                     (("request_burst", 0.8),)) for i in range(3)]
    (u,) = group(scored, {"bob@acme.example": IdentityState()})
    return incident_finding(incident=u.incident, activity=u.activity, page=u.page, last=finding,
                            detected_at_ms=int(at * 1000), rules_version="rules-2", model_version="m1")


def _probe_worker(role: str, env: dict[str, str], tmp: Path) -> str | None:
    """Start `aiaudit worker ROLE`, see it stay up for 8 s (it connected and runs), stop it (SIGTERM)."""
    log = tmp / f"worker-{role}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "worker", role], stdout=fh,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited {proc.returncode}: {log.read_text()[-400:]}"
            time.sleep(0.2)
        proc.terminate()
        proc.wait(30)
        return None if proc.returncode in (0, -15) else f"stopped with {proc.returncode}: {log.read_text()[-400:]}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_collector_reads_synopses_the_way_the_docs_write_them():
    assert expand("aiaudit alerts ack|resolve UID [--note TEXT]") == ["aiaudit alerts ack UID",
                                                                        "aiaudit alerts resolve UID"]
    assert expand("aiaudit verify [filters] [--json] [--trust FILE]") == ["aiaudit verify"]
    assert "aiaudit keys emitter new NAME" in [r for line in documented() for r in expand(line)]
    assert expand("aiaudit otlp serve &") == ["aiaudit otlp serve"]  # a background job in a walkthrough
