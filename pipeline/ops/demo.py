"""`aiaudit demo`: the whole path on the embedded defaults, with progress, then stopped again."""

from __future__ import annotations

import base64
import gc
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from aiaudit.infra.kafka.broker import LocalKafka
from aiaudit.pipeline import store
from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, NoteSigner
from aiaudit.pipeline.contract.emitter_keys import key_set_file, load_emitter_keys, read_key_set
from aiaudit.pipeline.emit.producer import Emitter
from aiaudit.pipeline.emit.synthetic import SyntheticEvents, forged_message, malformed_messages
from aiaudit.pipeline.errors import InfraError, SigningKeyError
from aiaudit.pipeline.export.read import read_export_file
from aiaudit.pipeline.gateway.policy import bundle_message, bundle_problems
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import (
    CHECKPOINT_PUB,
    KeyRing,
    active_key_file,
    checkpoint_key_file,
    ensure_checkpoint_key,
    ensure_operator_key,
    generate_key,
    load_checkpoint_key,
    load_operator_key,
    load_or_create_scorer_key,
    operator_key_file,
    read_checkpoint_public_key,
    read_jwks,
    read_operator_public_key,
    scorer_key_file,
)
from aiaudit.pipeline.ops.progress import Lag, wait_until_drained
from aiaudit.pipeline.ops.supervisor import start_worker, stop_worker
from aiaudit.pipeline.query.api import find_records, policies_in_force, policy_bundle
from aiaudit.pipeline.query.export import export_records
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import dead_letters, evidence
from aiaudit.pipeline.store.filters import Filters
from aiaudit.pipeline.verify.run import verify_export
from aiaudit.pipeline.verify.sources import verify_store
from aiaudit.pipeline.verify.trust import Trust, parse_trust, trust_document
from aiaudit.pipeline.witness.submit import submit_once

# The policy bundles the demo's traffic was decided under: published to the policies topic like a
# gateway publishes its own, so `aiaudit gateway policy --version V` prints the exact bundle of
# any demo record. The second version also denies the customer-name term.
DEMO_POLICY = """
policy_id: acme-default
version: "2026.10.0"
org_terms:
  - {name: project_name, pattern: "project falcon", level: internal}
  - {name: customer_name, pattern: "globex|initech", level: confidential}
vendors:
  openai: {max_level: internal}
  anthropic: {max_level: confidential}
  azure.ai.openai: {max_level: confidential}
  mistral_ai: {max_level: internal}
  local: {max_level: restricted}
retention_days: {standard-1y: 365, restricted-90d: 90}
routes:
  default:
    roles: [finance-analyst, engineer, support-agent, legal-counsel, hr-partner, data-scientist, sales,
            finance-automation, engineering-automation, support-automation]
    vendors: {openai: ["*"], anthropic: ["*"], azure.ai.openai: ["*"], mistral_ai: ["*"], local: ["*"]}
    redact: ["secret.*"]
    reroute: {vendor: local, model: llama-3.1-70b}
    retention_scope: standard-1y
"""


def demo_policies() -> list[Any]:
    """The two demo bundles, parsed and versioned as the gateway would."""
    from aiaudit.pipeline.gateway.policy import parse_policy

    first = parse_policy(DEMO_POLICY, source="demo policy 2026.10.0")
    second = parse_policy(DEMO_POLICY.replace('version: "2026.10.0"', 'version: "2026.11.0"').replace(
        'redact: ["secret.*"]', 'redact: ["secret.*"]\n    deny: ["org.customer_name"]'), source="demo policy 2026.11.0")
    return [first, second]


GATEWAY_POLICY = """
policy_id: acme-gateway-demo
version: "2026.11.1"
org_terms: [{name: falcon, pattern: "project falcon", level: restricted}]
vendors: {openai: {max_level: internal}, local: {max_level: restricted}}
retention_days: {standard: 90}
routes:
  default:
    roles: [engineer]
    vendors: {openai: ["gpt-4o*"]}
    redact: ["pii.email"]
    deny: ["secret.*"]
    reroute: {vendor: local, model: llama-3.1-8b}
    retention_scope: standard
    content: full
"""
GATEWAY_CASES = (
    ("allowed", "summarise the quarterly plan"),
    ("redacted", "email carol@example.com the figures"),
    ("denied", "why does AKIAIOSFODNN7EXAMPLE not work"),
    ("rerouted", "what is the status of project falcon"),
)


def _chat(url: str, key: str, text: str) -> tuple[int, str, str]:
    """(status, what came back, X-Request-Id) of one chat request through the gateway."""
    req = urllib.request.Request(f"{url}/v1/chat/completions", method="POST", data=orjson.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310  # our own local gateway
            body = orjson.loads(resp.read())
            return resp.status, body["choices"][0]["message"]["content"], resp.headers.get("x-request-id", "")
    except urllib.error.HTTPError as exc:
        body = orjson.loads(exc.read() or b"{}")
        return exc.code, body.get("error", {}).get("message", ""), exc.headers.get("x-request-id", "")


def _gateway_step(settings: Settings, state: Path) -> dict[str, str]:
    """Requests through the gateway (in this process) to the vendor stand-in; their events join the
    chain, and what the route keeps goes to ai.content sealed. Returns each case's request id."""
    from aiaudit.pipeline.gateway.app import build_app
    from aiaudit.pipeline.gateway.identity import new_api_key
    from aiaudit.pipeline.ops.vendor_standin import FakeUpstream, Served
    from aiaudit.pipeline.settings import GatewaySettings

    step("Requests through the policy-enforcing gateway to a vendor stand-in: allowed, redacted, denied, rerouted")
    folder = state / "gateway"
    folder.mkdir(parents=True, exist_ok=True)
    key, digest = new_api_key()
    with Served(FakeUpstream().app) as vendor:
        (folder / "gateway.yaml").write_text(json.dumps({
            "upstreams": {"openai": {"base_url": f"{vendor.url}/v1"},
                          "local": {"base_url": f"{vendor.url}/v1"}},
            "api_keys": [{"sha256": digest, "id": "alice@acme.example", "role": "engineer", "type": "workforce"}]}))
        (folder / "policy.yaml").write_text(GATEWAY_POLICY)
        gw = settings.model_copy(update={"gateway": GatewaySettings(
            config_file=folder / "gateway.yaml", policy_file=folder / "policy.yaml", gateway_id="demo-gateway")})
        with Served(build_app(gw)) as gateway:
            print(f"  gateway on {gateway.url}, vendor stand-in on {vendor.url} (it echoes what it received)")
            ids = {}
            for label, text in GATEWAY_CASES:
                status, said, rid = _chat(gateway.url, key, text)
                ids[label] = rid
                print(f"  {label:<9} {status}  X-Request-Id {rid}\n            {text!r} -> {said[:90]!r}")
            print("  the route keeps content (redacted), sealed under alice's key and each request's own: never "
                  "plaintext on a topic")
    return ids


def _renamed(ev: dict[str, Any], run: str) -> dict[str, Any]:
    def tag(name: str | None) -> str | None:
        if name is None:
            return None
        local, at, domain = name.partition("@")
        return f"{local}.{run[:6]}{at}{domain}"

    actor = ev["actor"]
    return {**ev, "actor": {**actor, "id": tag(actor["id"]), "on_behalf_of": tag(actor.get("on_behalf_of"))}}


def _finding_step(settings: Settings, workers: list[Any], log_dir: Path, run: str, policy: Any,
                  load_events: int) -> None:
    """Train a model on the chained traffic (read through the running sink), promote it, score with the
    scoring worker, inject misuse, deliver the findings to a local webhook receiver (the delivery
    agent) as incidents, and work the top incident: the security operations path."""
    import os
    import secrets

    import yaml

    from aiaudit.detectors.rules import RULES_VERSION
    from aiaudit.detectors.traffic import TUNING, labelled_traffic
    from aiaudit.pipeline.deliver.receiver import WebhookReceiver
    from aiaudit.pipeline.keys import load_signer
    from aiaudit.pipeline.ops.labelled import emit_all
    from aiaudit.pipeline.ops.progress import scoring_done
    from aiaudit.pipeline.query.alerts import list_alerts
    from aiaudit.pipeline.score.models import events_from_store, promote, train_from

    step("Anomaly monitoring: a model trained on the chained traffic, misuse injected, the top incident worked")
    started = datetime.now(timezone.utc)
    # Two weeks of a small team's habits (the model learns weekdays, nights and runs from them), a day of misuse.
    baseline, live = labelled_traffic(seed=7, test_days=1, people=12, agents=2)
    # Each run's team under its own names: a second demo against the same store would otherwise give
    # the same people the same weeks twice (every request twice in its own minute: bursts everywhere).
    baseline = [_renamed(ev, run) for ev in baseline]
    live = [(_renamed(ev, run), label) for ev, label in live]
    versions = (policy.policy_id, policy.version)
    print(f"  baseline traffic: {emit_all(settings, baseline, f'demo-baseline-{run}', versions, new_ids=True)} events")
    if not wait_until_drained(settings, timeout_s=300, poll_s=2.0).done:
        raise InfraError("the baseline traffic did not drain within 300s")
    version = f"demo-{run}"
    manifest = train_from(events_from_store(settings, Filters(limit=1)), version=version, seed=7,
                          models_dir=settings.score.models_dir)
    signer = load_signer(active_key_file(settings.signing.keys_dir, settings.signing.key_file))
    promote(settings.score.models_dir, version, signer, by="demo-operator")
    print(f"  trained {version} on {manifest['training']['rows']} chained events (read through the running sink); "
          f"promoted, signed by key {signer.kid}")
    # The rules learn what each vendor may receive from a policy's vendors section (the traffic's vendors here).
    scorer_policy = log_dir / "scorer-policy.yaml"
    # And the gateway's vendors the traffic does not name: what it reroutes to `local` may go there.
    vendors = {**yaml.safe_load(GATEWAY_POLICY)["vendors"], **{v: {"max_level": lvl} for v, lvl in TUNING.max_level.items()}}
    scorer_policy.write_text(yaml.safe_dump({"vendors": vendors}))
    # The scorer key signs findings; the delivery agent (started next) delivers only what it signed.
    load_or_create_scorer_key(scorer_key_file(settings.signing.keys_dir, settings.score.finding_key_file))
    workers.append(start_worker("score", instance_id="demo-score", log_file=log_dir / "score.log",
                                env={**os.environ, "AIAUDIT_SCORE__POLICY_FILE": str(scorer_policy)}))
    # Findings go to where analysts work: here a local receiver that checks every HMAC signature.
    key = secrets.token_urlsafe(32)  # the destination's shared secret: in the agent's environment, never in a file
    receiver = WebhookReceiver(key.encode())
    destinations = log_dir / "destinations.yaml"
    destinations.write_text(yaml.safe_dump({"destinations": [
        {"name": "soc-webhook", "kind": "webhook", "url": receiver.url, "secret_env": "AIAUDIT_DEMO_WEBHOOK_KEY",
         "send": "incidents"}]}))
    workers.append(start_worker("deliver", log_file=log_dir / "deliver.log", env={
        **os.environ, "AIAUDIT_DELIVER__DESTINATIONS_FILE": str(destinations), "AIAUDIT_DEMO_WEBHOOK_KEY": key}))
    print(f"  delivery agent: each incident's page, once, within the daily paging budget "
          f"({settings.deliver.pages_per_day or 'none'}), to a webhook receiver at {receiver.url} (HMAC-signed; "
          f"{destinations})")
    misuse = sum(label != "normal" for _, label in live)
    sent: list[str] = []
    emit_all(settings, [ev for ev, _ in live], f"demo-live-{run}", versions, new_ids=True, ids=sent)
    label_of = {eid: label for eid, (_, label) in zip(sent, live)}
    print(f"  live traffic: {len(live)} events, {misuse} of them misuse (bursts, injections, secrets to an "
          "unapproved vendor, night activity ...)")
    deadline = time.monotonic() + 240
    while not ((lag := wait_until_drained(settings, timeout_s=5, poll_s=1.0)).done and (scored := scoring_done(settings))):
        if time.monotonic() > deadline:
            print(f"  the pipeline did not finish the live traffic within 240s: {lag.chain} input message(s) not "
                  f"chained, {lag.evidence} evidence partition(s) behind, {lag.sink} partition(s) not sunk, scoring "
                  f"{'done' if lag.done and scored else 'not known done'} (logs in {log_dir})")
            return
        time.sleep(2)
    wait_until_drained(settings, timeout_s=60, poll_s=1.0)  # the findings and incidents, into ClickHouse
    client = store.open_reads(settings, "demo")  # the sink holds the store: read through it
    every = list_alerts(client, settings, since=started, limit=100_000)
    alerts = [a for a in every if a["event_id"] in label_of]
    caught = {a["event_id"] for a in alerts if label_of[a["event_id"]] != "normal"}
    print(f"  the live day: findings on {len(caught)} of its {misuse} misuse events and on "
          f"{len(alerts) - len(caught)} of its {len(live) - misuse} normal ones (model {version}, rules {RULES_VERSION})")
    _incidents_report(settings, client, live, len(baseline), load_events, started, receiver, log_dir)


def demo_reader_key(settings: Settings) -> Path:
    """This host's reader key (`aiaudit keys analyst new local-reader --console`), made once: it signs
    the access record of every read the sink's store API or the CLI serves here."""
    from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, key_set_file, new_analyst_key
    from aiaudit.pipeline.store.access_log import LOCAL_READER, reader_key

    found = reader_key(settings.model_copy(update={"signing": settings.signing.model_copy(update={
        "reader_key_file": None, "analyst_key_file": None})}))
    if found is not None:
        return found
    return new_analyst_key(settings.signing.keys_dir / ANALYSTS_DIR, LOCAL_READER, key_set_file(settings),
                           console=True)[0]


def _erasure_step(settings: Settings, event_id: str) -> None:
    """A request's kept content erased (a person named in the prompt), as `aiaudit erase --event-id`
    does: a signed erasure record first, then the key; the records and chains stay valid."""
    from aiaudit.pipeline.contract.analyst_keys import load_status_signer
    from aiaudit.pipeline.contract.subject_keys import SubjectKeys
    from aiaudit.pipeline.query.content import content_of
    from aiaudit.pipeline.query.erase import erase

    step("Erasure (GDPR Art. 17) that keeps every chain valid: `aiaudit erase --event-id`")
    keys = SubjectKeys(settings.content_keys_dir())
    before = content_of(settings, keys, event_id)
    print(f"  kept for {event_id}: {before['prompt']!r} ({before['state']})")
    record = erase(settings, keys, load_status_signer(demo_analyst_key(settings)), event_id=event_id,
                   reason="demo: carol, named in the prompt, asked for erasure")
    print(f"  erased by {record['by']}: key {', '.join(record['key_ids'])} destroyed after erasure record {record['id']}")
    wait_until_drained(settings, timeout_s=60, poll_s=1.0)  # the record chained and stored
    after = content_of(settings, keys, event_id)
    print(f"  now: prompt {after['prompt']!r}; {after['state'][:160]}")
    print(f"  (as people run it: aiaudit content show {event_id})")


def _access_step(settings: Settings) -> None:
    """Who looked at the evidence during the run: the access records of the reads above (what
    `aiaudit access list` prints), each signed by the process that served it."""
    from aiaudit.pipeline.store.access import select_access

    step("Who looked at the evidence (`aiaudit access list`): every read of the store is recorded and chained")
    client = store.open_reads(settings, "access")
    try:
        _, rows = store.query_rows(client, *select_access(store.database(settings), limit=10_000))
    finally:
        client.close()
    by: dict[tuple[str, str, str], int] = {}
    for _, principal, via, op, outcome, *_ in rows:
        key = (principal, via or "-", f"{op} ({outcome})")
        by[key] = by.get(key, 0) + 1
    for (principal, via, op), n in sorted(by.items()):
        print(f"  {n:>5} read(s) by {principal} via {via}: {op}")
    if rows:
        at, principal, _, op, _, count, digest, what, *_ = rows[0]
        print(f"  the newest: {principal} {op}, {count} row(s) served, {digest[:23]}…: {what[:100]}")


def demo_analyst_key(settings: Settings) -> Path:
    """The demo analyst's key (`aiaudit keys analyst new soc-analyst`), made once and registered in the
    analyst key set: a status change signed by no registered analyst is refused by the chain worker."""
    from aiaudit.pipeline.contract.analyst_keys import ANALYSTS_DIR, key_set_file, new_analyst_key

    folder = settings.signing.keys_dir / ANALYSTS_DIR
    found = sorted(folder.glob("soc-analyst.*.key")) if folder.exists() else []
    if found:
        return found[-1]
    return new_analyst_key(folder, "soc-analyst", key_set_file(settings))[0]


def _incidents_report(settings: Settings, client: Any, live: list[tuple[dict[str, Any], str]], baseline: int,
                      load_events: int, started: datetime, receiver: Any, log_dir: Path) -> None:
    """What the security analyst sees of the live day: incidents, not findings; the pages the
    budget let through; the top incident delivered, acknowledged and its history."""
    from aiaudit.detectors.features import event_time
    from aiaudit.pipeline.contract.analyst_keys import load_status_signer
    from aiaudit.pipeline.query.incidents import incident_history, list_incidents, set_incident_status

    people = {ev["actor"]["id"] for ev, _ in live}
    misusers = {ev["actor"]["id"] for ev, label in live if label != "normal"}
    normal = baseline + sum(label == "normal" for _, label in live)  # the team's two weeks and its live day
    scored = list_incidents(client, settings, changed_since=started, limit=100_000)  # scored in this run
    incidents = [i for i in scored if i["identity"] in people]
    asked = [i for i in incidents if i["page_asked"]]
    false_pages = [i for i in asked if not _covers_misuse(i, live, event_time)]
    misuse_covered = sum(1 for ev, label in live if label != "normal" and any(
        i["identity"] == ev["actor"]["id"] and _within(i, event_time(ev)) for i in asked))
    load = [i for i in scored if i["identity"] not in people]
    load_pages = sum(1 for i in load if i["page_asked"] and _utc(i["page_asked_at"]) >= started)
    print(f"  the team as incidents: {len(incidents)} incident(s) of {len(people)} identities ({len(misusers)} "
          f"misusing on the live day); {len(asked)} asked for their page, {len(false_pages)} of them on normal "
          f"traffic ({1000 * len(false_pages) / max(1, normal):.2f} per 1,000 of its {normal} normal events); "
          f"{misuse_covered} of {sum(label != 'normal' for _, label in live)} misuse events covered by a paged incident")
    print(f"  the synthetic load ({load_events} events): {len(load)} incident(s), {load_pages} asked for their page "
          f"({1000 * load_pages / max(1, load_events):.2f} per 1,000 events)")
    rank = {"critical": 0, "high": 1, "medium": 2}
    for i in sorted(asked, key=lambda i: (rank.get(i["severity"], 3), -i["findings"]))[:4]:
        print(f"    {i['severity']:<8} {i['family']:<13} {i['identity']:<28} {i['findings']:>4} finding(s)  {i['uid']}")
    if not asked:
        return
    deadline = time.monotonic() + 90
    got = None
    while got is None and time.monotonic() < deadline:  # the top incident the budget let through
        got = next((receiver.get(i["uid"]) for i in sorted(asked, key=lambda i: (rank.get(i["severity"], 3),
                                                                                   -i["findings"]))
                    if receiver.get(i["uid"]) is not None), None)
        if got is None:
            time.sleep(1)
    if got is None:
        print(f"  no page reached the webhook receiver within 90s (see {log_dir / 'deliver.log'})")
        return
    top = next(i for i in asked if i["uid"] == got.finding["finding_info_list"][0]["uid"])
    print(f"  the webhook receiver has {len(receiver.received)} page(s) (signatures verified; {receiver.repeats} "
          f"repeat(s) dropped by delivery id, {len(receiver.refused)} refused), among them the top incident, whole: "
          f"{got.finding['severity']} {top['family']} of {top['identity']}, {top['findings']} finding(s), latest record "
          f"{got.finding['unmapped']['chain']['origin']}#{got.finding['unmapped']['chain']['seq']}")
    analyst = demo_analyst_key(settings)
    set_incident_status(settings, top["uid"], "acknowledged", signer=load_status_signer(analyst),
                        note="calling the owner", client=client)
    print(f"  aiaudit incidents ack {top['uid']} --key {analyst}  (signed with soc-analyst's own key, which the "
          "status chain worker checks against the analyst key set; sent as an event while the sink runs)")
    deadline = time.monotonic() + 30
    history = incident_history(client, settings, top["uid"])
    while not any(h["status"] == "acknowledged" for h in history) and time.monotonic() < deadline:
        time.sleep(1)
        history = incident_history(client, settings, top["uid"])
    print(f"  aiaudit incidents history {top['uid']}")
    for h in history:
        print(f"    {h['at']:%H:%M:%S} {h['status']:<15} {h['actor']:<16} {str(h['note'])[:70]}")


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _within(incident: dict[str, Any], t: float) -> bool:
    start, end = _utc(incident["window_start"]), _utc(incident["last_seen"])
    return bool(start.timestamp() - 1e-3 <= t <= end.timestamp() + 1e-3)


def _covers_misuse(incident: dict[str, Any], live: list[tuple[dict[str, Any], str]], event_time: Any) -> bool:
    return any(label != "normal" and ev["actor"]["id"] == incident["identity"] and _within(incident, event_time(ev))
               for ev, label in live)


def _with_emitter_key(settings: Settings) -> Settings:
    """The demo's emitters (SDK and gateway) sign with one key registered as emitter `demo`: made
    and registered on the first run (each real emitter has its own: `aiaudit keys emitter new`)."""
    from aiaudit.pipeline.contract.emitter_keys import EMITTERS_DIR, new_emitter_key

    if settings.emitter.key_file is not None or not settings.emitter.sign:
        print(f"emitter key: {settings.emitter.key_file or 'none (events unsigned)'}")
        return settings
    # The emitter's private key in a folder of its own: the chain worker's keys folder holds only the
    # emitter key set (public keys), so its host cannot sign events as an emitter.
    folder = settings.signing.keys_dir.parent / "emitter-keys" / EMITTERS_DIR
    registered = {k["kid"][:8] for k in read_key_set(key_set_file(settings), missing_ok=True)["keys"] if "kid" in k}
    found = [p for p in sorted(folder.glob("demo.*.key")) if p.name.split(".")[1] in registered]
    if found:
        path = found[-1]
    else:
        path, kid, _ = new_emitter_key(folder, "demo", key_set_file(settings))
        print(f"generated the emitter key {path} (kid {kid}), registered as emitter 'demo' in {key_set_file(settings)}")
    print(f"emitter key: {path} (every event is signed with it; the chain worker refuses unsigned ones)")
    return settings.model_copy(update={"emitter": settings.emitter.model_copy(update={"key_file": path})})


def _start_signer(settings: Settings, log_dir: Path) -> tuple[Settings, subprocess.Popen[bytes] | None]:
    """The checkpoint signer in a process and folder of its own (<state>/signer): the chain worker
    holds no checkpoint key. A checkpoint key a former demo kept in the workers' keys folder is moved
    there, and the signer adopts the chains that key signed (once). AIAUDIT_CHAIN__SIGNER_URL set
    beforehand: that signer is used, started by whoever set it."""
    if settings.chain.signer_url:
        print(f"checkpoints signed by the signer at {settings.chain.signer_url}")
        return settings, None
    folder = settings.local.state_dir / "signer"
    key = folder / "checkpoint.key"
    adopt = False
    if settings.signing.checkpoint_key_file is not None:
        print(f"checkpoint key: {settings.signing.checkpoint_key_file} (in the chain worker's process: "
              "AIAUDIT_SIGNING__CHECKPOINT_KEY_FILE is set)")
        return settings, None
    local = checkpoint_key_file(settings.signing.keys_dir, None)
    if not key.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if local.exists():  # moved out of the workers' keys folder, not copied: one holder
            os.replace(local, key)
            os.replace(local.with_name(CHECKPOINT_PUB), key.with_name(CHECKPOINT_PUB))
            adopt = True
            print(f"moved the checkpoint key out of the chain worker's keys folder into the signer's: {key}")
        else:
            ensure_checkpoint_key(key)
            print(f"generated the checkpoint key {key} (the signer's own folder)")
    elif local.exists():
        print(f"note: {local} is a checkpoint key the signer does not use; remove it", file=sys.stderr)
    token = os.environ.get("AIAUDIT_SIGNER_TOKEN") or secrets.token_urlsafe(24)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AIAUDIT_SIGNER_TOKEN": token}
    argv = [sys.executable, "-m", "aiaudit.pipeline.cli", "signer", "serve", str(folder), "--port", str(port)]
    with open(log_dir / "signer.log", "ab") as out:
        proc = subprocess.Popen(argv + (["--adopt"] if adopt else []), stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/state", timeout=1)  # noqa: S310  # our own loopback signer
        except urllib.error.HTTPError:
            break  # 401 without the token: it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise InfraError(f"the checkpoint signer did not start; see {log_dir / 'signer.log'}") from None
            time.sleep(0.2)
    # The workers started from here find it by these (and hold only its public key).
    os.environ.update({"AIAUDIT_SIGNER_TOKEN": token, "AIAUDIT_CHAIN__SIGNER_URL": url,
                       "AIAUDIT_SIGNING__CHECKPOINT_KEY_FILE": str(key.with_name(CHECKPOINT_PUB))})
    print(f"checkpoint signer on {url} (key in {folder}, log {log_dir / 'signer.log'}): the chain worker holds "
          "no checkpoint key, and the signer signs only extensions of what it signed")
    return settings.updated(chain={"signer_url": url},
                            signing={"checkpoint_key_file": key.with_name(CHECKPOINT_PUB)}), proc


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run_demo(settings: Settings, *, events: int, keep_running: bool) -> int:
    state = settings.local.state_dir
    log_dir = state / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(settings)

    step("Signing key")
    try:
        key = active_key_file(settings.signing.keys_dir, settings.signing.key_file)
        print(f"using {key}")
    except SigningKeyError:
        key, kid = generate_key(settings.signing.keys_dir)
        print(f"generated {key} (kid {kid}); its public key is in {settings.signing.keys_dir / 'jwks.json'}")

    settings = _with_emitter_key(settings)
    print(f"analyst key: {demo_analyst_key(settings)} (soc-analyst signs each status change with it; the chain "
          "worker refuses a change no registered analyst key signed)")
    print(f"reader key: {demo_reader_key(settings)} (signs the access record of every read of the store on this "
          "host: `aiaudit access list` shows them)")
    settings, signer_proc = _start_signer(settings, log_dir)

    step("Local Apache Kafka (KRaft) from the Maven Central jars")
    kafka.up()
    print(kafka.status())

    step("Workers: chain (sign + hash-chain the requests), evidence (chain every other kind of evidence: "
         "findings, status changes, dead letters, deliveries, policies ...) and sink (ClickHouse via chDB)")
    # Heartbeats every 5 s (unless set): the demo's period ends minutes after it starts, and its report
    # shows each chain's end by a checkpoint signed after the period.
    worker_env = {"AIAUDIT_CHAIN__HEARTBEAT_INTERVAL_S": "5", **os.environ}
    workers = [start_worker(role, instance_id=f"demo-{role}", log_file=log_dir / f"{role}.log", env=worker_env)
               for role in ("chain", "evidence", "sink")]
    print(f"logs in {log_dir}/chain.log, {log_dir}/evidence.log and {log_dir}/sink.log")
    try:
        step(f"Emitting {events} AI-request events from 3 emitters, plus malformed messages")
        start = datetime.now(timezone.utc) - timedelta(hours=2)
        run = uuid.uuid4().hex[:8]  # each run is new traffic: new emitters, new event ids
        emitters = [Emitter(settings, emitter_id=f"demo-gateway-{i}-{run}") for i in range(3)]
        policies = demo_policies()
        raw = Producer(kafka_config.producer(settings))
        for policy in policies:
            raw.produce(settings.kafka.policies_topic, key=policy.version.encode(), value=orjson.dumps(
                bundle_message(policy, loaded_at=start.isoformat(), gateway_id="demo")))
        if raw.flush(30):
            raise InfraError("the broker did not acknowledge the demo's policy bundles")
        print(f"  policy bundles published: {', '.join(p.version for p in policies)}")
        versions = [(p.policy_id, p.version) for p in policies]
        gens = [SyntheticEvents(int(run, 16) + i, start, e.emitter_id, step=timedelta(milliseconds=1200),
                                policies=versions) for i, e in enumerate(emitters)]
        t0 = time.monotonic()
        for n in range(events):
            i = n % 3
            emitters[i].emit(gens[i].next_event())
            if (n + 1) % 1000 == 0 or n + 1 == events:
                print(f"  emitted {n + 1}/{events}", flush=True)
        for e in emitters:
            e.flush()
        bad = [*malformed_messages(1, settings.chain.max_event_bytes), ("unauthenticated_emitter", forged_message(1))]
        for _, data in bad:
            raw.produce(settings.kafka.requests_topic, value=data, key=b"malformed")
        if raw.flush(30):
            raise InfraError("the broker did not acknowledge the malformed messages")
        del raw, emitters  # close the producers now, not when Kafka is already down
        malformed = sorted({r for r, _ in bad[:-1]})
        print(f"  {events} events acknowledged in {time.monotonic() - t0:.1f}s; {len(bad) - 1} malformed messages "
              f"({', '.join(malformed)}) and 1 event no registered emitter key signed: each is dead-lettered "
              "with its reason")

        gateway_ids = _gateway_step(settings, state)

        step("Waiting until everything is chained and in ClickHouse")

        def report(lag: Lag) -> None:
            print(f"  not yet chained: {lag.chain} message(s), {lag.evidence} evidence partition(s); partitions not "
                  f"yet sunk: {lag.sink}", flush=True)
            for w in workers:
                if w.poll() is not None:
                    raise InfraError(f"a worker exited with {w.returncode}; see {log_dir}")

        lag = wait_until_drained(settings, timeout_s=300, report=report, poll_s=2.0)
        if not lag.done:
            raise InfraError(f"the pipeline did not drain within 300s; see {log_dir}")
        print(f"  drained {time.monotonic() - t0:.1f}s after the first event")
        _finding_step(settings, workers, log_dir, run, policies[-1], events)
        # A chain that went quiet gets its last size signed one checkpoint interval later.
        time.sleep(settings.chain.checkpoint_interval_s + 1.0)
        wait_until_drained(settings, timeout_s=60, poll_s=1.0)
        print("  every chain's newest records are under a signed checkpoint")
        _erasure_step(settings, gateway_ids["redacted"])
        time.sleep(settings.chain.checkpoint_interval_s + 1.0)  # the erasure record under a signed checkpoint
        _access_step(settings)
        period_end = datetime.now(timezone.utc)  # the report's period: this run's traffic until now
        time.sleep(5 + settings.chain.checkpoint_interval_s + 2.0)  # each chain's heartbeat signed after it
    finally:
        step("Stopping the workers (embedded chDB admits one process at a time)")
        for w in workers:
            stop_worker(w)
        if signer_proc is not None:
            stop_worker(signer_proc)

    gc.collect()
    client = store.connect(settings)
    db = store.database(settings)

    step("Verifying every chain (signatures, links, seqs, forks, typed columns, emitter gaps, emitter signatures)")
    # Emitter signatures checked too (records of demo runs before emitters signed carry none: not required).
    keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)).with_emitters(
        load_emitter_keys(key_set_file(settings), required=False))
    sg = settings.signing
    checkpoint_pub = read_checkpoint_public_key(checkpoint_key_file(sg.keys_dir, sg.checkpoint_key_file))
    result = verify_store(client, settings, Trust(keyring, (checkpoint_pub,)), Filters(limit=1),
                          progress=lambda line: print(f"  {line}"))
    print(result.text())

    witness_ok = _witness_step(settings, client, keyring, state)

    step("The auditor's evidence set: everything alice did, checked without the database")
    evidence_file = state / "evidence-alice.jsonl"
    op_key = operator_key_file(sg.keys_dir, sg.operator_key_file)
    ensure_operator_key(op_key)  # the operator's own key, beside (not in) the workers' keys folder
    with evidence_file.open("w", encoding="utf-8") as fh:
        done = export_records(client, settings, Filters(actor="alice@acme.example", limit=1), fh,
                              now=datetime.now(timezone.utc), operator=load_operator_key(op_key))
    print(f"  exported {done.records} record(s) with {done.checkpoints} signed checkpoint(s) and {done.proofs} "
          f"inclusion proof(s) to {evidence_file}")
    sample = verify_export(read_export_file(evidence_file, lenient=True),
                           Trust(keyring, (checkpoint_pub,), operator_keys=(read_operator_public_key(op_key),)))
    print("\n".join("  " + line for line in sample.text().splitlines() if line))
    print(f"  (the same, as an auditor runs it: aiaudit verify --export {evidence_file})")

    report_ok = _report_step(settings, client, state, start, period_end,
                             Trust(keyring, (checkpoint_pub,), operator_keys=(read_operator_public_key(op_key),)))

    step("Retrieval: what an auditor samples")
    samples = [
        ("alice's requests, any agent acting for her included", Filters(actor="alice@acme.example", limit=5)),
        ("anthropic requests between 10 and 20 minutes into the traffic",
         Filters(provider="anthropic", since=start + timedelta(minutes=10), until=start + timedelta(minutes=20), limit=5)),
        ("decisions under policy 2026.11.0 (all its bundles)", Filters(policy_version="2026.11.0", limit=5)),
        ("restricted data denied", Filters(classification="restricted", decision="deny", limit=5)),
    ]
    for title, f in samples:
        rows = find_records(client, settings, f, ("ts", "actor_id", "on_behalf_of", "provider", "model", "prompt_level",
                                                   "decision", "policy_version", "origin", "seq"))
        print(f"\n  {title}: showing {len(rows)}")
        for r in rows:
            print(f"    {r['ts']:%Y-%m-%d %H:%M:%S} {r['actor_id']:<22} {str(r['on_behalf_of'] or ''):<20} "
                  f"{r['provider']:<16} {r['model']:<16} {r['prompt_level']:<12} {r['decision']:<7} {r['origin']}#{r['seq']}")
    print("\n  the gateway's requests, as recorded (route default):")
    for r in find_records(client, settings, Filters(route="default", limit=10),
                          ("ts", "actor_id", "decision", "provider", "model", "prompt_level", "prompt_categories")):
        print(f"    {r['ts']:%H:%M:%S} {r['actor_id']:<20} {r['decision']:<8} {str(r['provider'] or '-'):<8} "
              f"{r['model']:<14} {r['prompt_level']:<12} {', '.join(r['prompt_categories'])}")

    step("The exact policy behind a record (what `aiaudit gateway policy --version V` prints)")
    behind = find_records(client, settings, Filters(route="default", limit=1), ("policy_version",))
    if behind:  # a gateway record: its policy was published when the gateway loaded it
        version = behind[0]["policy_version"]
        bundle = policy_bundle(settings, version, client)
        problems = ["not published"] if bundle is None else bundle_problems(
            version, str(bundle["canonical_json"]), str(bundle["source_yaml"]))
        print(f"  {version}: " + ("the stored bundle hashes to this version" if not problems else "; ".join(problems)))
    for row in policies_in_force(client, settings):
        print(f"  {row['policy_version']}: {row['decisions']} decision(s), {row['first_decision']} .. "
              f"{row['last_decision']}; bundle {'published' if row['first_loaded'] else 'NOT published'}")
    _, counts = store.query_rows(client, *evidence.count_records(db))
    _, dead = store.query_rows(client, *dead_letters.count_by_reason(db))
    print(f"\n  records in ClickHouse: {counts[0][0]}; dead letters by reason: "
          + ", ".join(f"{r}={n}" for r, n in dead))
    client.close()

    if keep_running:
        print("\nKafka is still running: stop it with `aiaudit infra down`.")
    else:
        step("Stopping Kafka")
        kafka.down()
        print("stopped; state kept in", state)
    return 0 if result.ok and sample.ok and witness_ok and report_ok else 1


def _report_step(settings: Settings, client: Any, state: Path, since: datetime, until: datetime, trust: Trust) -> bool:
    """The auditor's report for the demo's period, checked offline as the auditor checks it."""
    from aiaudit.pipeline.report.pack import check_report, write_report

    step("The auditor's report for this run's period: HTML, figures, the export behind them, a sealed manifest")
    sg = settings.signing
    out = state / "report"
    report = write_report(client, settings, out, since=since, until=until, scope={},
                          operator=load_operator_key(operator_key_file(sg.keys_dir, sg.operator_key_file)),
                          now=datetime.now(timezone.utc), progress=lambda line: print(f"  {line}"))
    f = report["figures"]
    print(f"  {f['requests']['total']:,} requests, {f['monitoring']['findings']:,} findings, "
          f"{f['integrity']['records_in_period']:,} records of evidence from {since:%H:%M:%S} to {until:%H:%M:%S}; "
          + ("completeness shown at both edges of every chain" if not f["completeness"]["problems"]
             else "; ".join(f["completeness"]["problems"][:3])))
    problems, verified, _ = check_report(out, trust)
    ok = not problems and verified is not None and verified.ok and not f["completeness"]["problems"]
    print(f"  {'checked offline: sealed, every figure recomputed from its export' if ok else 'NOT OK: ' + '; '.join(problems)}")
    print(f"  open {out / 'report.html'} in a browser; an auditor checks it with: aiaudit verify --report {out}")
    return ok


def _witness_step(settings: Settings, client: Any, keyring: KeyRing, state: Path) -> bool:
    """Run a witness (as someone other than the operator would), have it cosign every chain, and
    verify against what it cosigned. Returns whether that verification passed."""
    step("An independent witness cosigns every chain (C2SP tlog-witness), and verify asks it")
    sg = settings.signing
    checkpoint_pub = read_checkpoint_public_key(checkpoint_key_file(sg.keys_dir, sg.checkpoint_key_file))
    folder = state / "witness"
    key_file = folder / "witness.key"
    ensure_checkpoint_key(key_file)
    witness = NoteSigner.local("demo.witness.example/w1", SIG_COSIGNATURE_V1, load_checkpoint_key(key_file))
    config = folder / "witness.json"
    config.write_text(json.dumps({
        "name": witness.name, "key_file": str(key_file), "state_file": str(folder / "state.json"),
        "logs": [{"origin_prefix": f"{settings.chain.org}/{settings.chain.env}/",
                  "key": base64.b64encode(checkpoint_pub).decode()}]}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log_file = state / "logs" / "witness.log"
    with log_file.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "witness", "serve", "--config", str(config),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/latest?origin=-", timeout=1)  # noqa: S310  # our own local witness
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise InfraError(f"the demo witness did not start; see {log_file}") from None
                time.sleep(0.2)
        print(f"  witness {witness.name} on {url} (its own key and state in {folder}; log {log_file})")
        for outcome in submit_once(client, settings, url, witness.verifier):
            print(f"  {outcome.origin} size {outcome.size}: {outcome.status}")
        # The auditor's trust file (`aiaudit trust init`): every public key in force and this witness,
        # one cosignature required; the demo verifies with it, as an auditor would.
        op_key = operator_key_file(sg.keys_dir, sg.operator_key_file)
        ensure_operator_key(op_key)  # the operator's own key (it seals the export below)
        doc = trust_document(read_jwks(sg.keys_dir), [checkpoint_pub], operator_keys=[read_operator_public_key(op_key)],
                             emitter_jwks=read_key_set(key_set_file(settings), missing_ok=True),
                             witnesses=[(witness.verifier.vkey(), url)])
        trust_file = state / "trust.json"
        trust_file.write_text(json.dumps(doc, indent=2) + "\n")
        trust = parse_trust(trust_file.read_text(), str(trust_file))
        checked = verify_store(client, settings, trust, Filters(limit=1))
        print(f"  trust file {trust_file} (aiaudit trust init): {len(doc['record_keys']['keys'])} record key(s), the "
              "checkpoint, operator and emitter keys, this witness (1 cosignature required)")
        print(f"  verify --trust {trust_file}: " + ("every chain's records give the root the witness cosigned"
                                                   if checked.ok else f"{len(checked.failures)} failure(s)"))
        for f in checked.failures[:10]:
            print("  " + f.line())
        return checked.ok
    finally:
        proc.terminate()
        proc.wait(10)
