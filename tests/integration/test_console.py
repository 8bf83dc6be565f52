"""The console as people use it (issue 25 items 1-3), on a real broker, real workers, chDB through
the sink's store API, and Debian's Chromium driven through chromedriver: an auditor signs in,
searches, opens a record (its checks run, its proof bundle downloads), makes and downloads a
report; a SOC analyst acknowledges an incident, which the status chain takes as signed by the
console for that person; every page passes axe-core; every view is an access record."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from confluent_kafka import Producer
from pydantic import SecretStr

from aiaudit.pipeline.console.accounts import Accounts
from aiaudit.pipeline.console.app import Console
from aiaudit.pipeline.contract.analyst_keys import (
    ANALYSTS_DIR,
    key_set_file,
    load_status_signer,
    new_analyst_key,
    read_analyst_key_set,
)
from aiaudit.pipeline.contract.emitter_keys import key_set_file as emitter_key_set_file
from aiaudit.pipeline.contract.emitter_keys import read_key_set
from aiaudit.pipeline.export.read import read_export_file
from aiaudit.pipeline.gateway.policy import bundle_message
from aiaudit.pipeline.kafka import config as kafka_config
from aiaudit.pipeline.keys import (
    OPERATOR_PUB,
    checkpoint_key_file,
    load_operator_key,
    operator_key_file,
    read_checkpoint_public_key,
    read_jwks,
    read_operator_public_key,
)
from aiaudit.pipeline.ops.demo import demo_policies
from aiaudit.pipeline.store.api import RemoteClient
from aiaudit.pipeline.verify.run import verify_export
from aiaudit.pipeline.verify.trust import parse_trust, trust_document
from tests.integration.support import ChainWorkers, emit_synthetic, free_port_pair
from tests.integration.test_delivery_agent import findings
from tests.integration.test_delivery_agent import publish as publish_findings
from tests.integration.test_delivery_incidents import incident, publish
from tests.integration.webdriver import browser

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("AIAUDIT_TEST_OUTPUT", ROOT / "test-output")) / "console"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = {"ada": "ada-audits-2026!", "sam": "sam-triages-2026!"}


def _wait(what: str, probe, timeout_s: float = 120.0, page=None):
    deadline = time.monotonic() + timeout_s
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f}s" + (
            f": {page.url} shows {page.text('main')[:1500]}" if page is not None else "")
        time.sleep(0.5)
    return found


def _trust(settings, path: Path) -> Path:
    sg = settings.signing
    doc = trust_document(read_jwks(sg.keys_dir), [read_checkpoint_public_key(checkpoint_key_file(sg.keys_dir, None))],
                         operator_keys=[read_operator_public_key(operator_key_file(sg.keys_dir, None)
                                                                 .with_name(OPERATOR_PUB))],
                         emitter_jwks=read_key_set(emitter_key_set_file(settings), missing_ok=True),
                         analyst_jwks=read_analyst_key_set(key_set_file(settings), missing_ok=True))
    path.write_text(json.dumps(doc))
    return path


def _axe(page, name: str) -> None:
    """axe-core's WCAG 2.1 A/AA rules on the page as shown: no violation."""
    page.script(AXE.read_text(encoding="utf-8") + "\n;window.__axe_loaded = true;")
    result = page.script_async("const done = arguments[arguments.length - 1];"
                               "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})"
                               ".then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' (' + "
                               "v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ') + ')')))"
                               ".catch(e => done(['axe failed: ' + e]));")
    assert result == [], f"{name}: {result}"


def _shot(page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(OUTPUT / f"{name}.png")


def _sign_in(page, base: str, name: str) -> None:
    page.go(f"{base}/login")
    page.type("#name", name)
    page.type("#password", PASSWORD[name])
    page.click("form.card button[type=submit]")
    _wait("the overview after sign-in", lambda: page.url.rstrip("/") == base and "Overview" in page.text("h1"), 30, page)


@pytest.fixture
def console_stack(settings, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    settings = settings.updated(local={"state_dir": state})
    key, _, _ = new_analyst_key(settings.signing.keys_dir / ANALYSTS_DIR, "soc-console", key_set_file(settings),
                                console=True)
    trust = parse_trust(_trust(settings, tmp_path / "trust.json").read_text(), "trust.json")
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("ada", "auditor", PASSWORD["ada"])
    accounts.add("sam", "soc", PASSWORD["sam"])
    port = free_port_pair()
    settings = settings.updated(console={"port": port, "accounts_file": accounts.path})
    with ChainWorkers(settings, tmp_path, env={"AIAUDIT_SIGNING__READER_KEY_FILE": str(key)}) as workers:
        for name, role in (("w1", "chain"), ("e1", "evidence"), ("s1", "sink")):
            workers.start(name, role=role)
        _wait("the sink's store API", lambda: (state / "store-api.json").exists())
        emit_synthetic(settings, 40, emitter_id="edge-console", seed=11)
        updates = incident("mallory@acme.example", "secrets_sent", "critical", time.time() - 120, seq=4)
        publish(settings, updates, "console-incidents")
        publish_findings(settings, findings(0, per_actor=2), "console-alerts")
        raw = Producer(kafka_config.producer(settings))
        for n, policy in enumerate(demo_policies()):  # two versions of one policy, as a gateway publishes them
            raw.produce(settings.kafka.policies_topic, key=policy.version.encode(), value=orjson.dumps(bundle_message(
                policy, loaded_at=f"2026-12-0{n + 1}T08:00:00+00:00", gateway_id="gw-console")))
        assert raw.flush(30) == 0
        store = RemoteClient.find(state)
        db = settings.clickhouse.database
        _wait("40 records and a checkpoint covering them", lambda: store.command(
            f"SELECT count() FROM {db}.evidence") == 40 and store.command(
            f"SELECT max(size) FROM {db}.checkpoints WHERE note IS NOT NULL") >= 10, 180)
        _wait("the policy bundles stored", lambda: store.command(f"SELECT count() FROM {db}.policies") == 2, 180)
        _wait("the incident and the alerts stored", lambda: store.command(f"SELECT count() FROM {db}.incidents") > 0
              and store.command(f"SELECT count() FROM {db}.alerts") > 0, 180)
        console = Console(settings, trust=trust, signer=load_status_signer(key),
                          operator=load_operator_key(operator_key_file(settings.signing.keys_dir, None)),
                          accounts=accounts)
        with _serving(console, port) as base:
            yield settings, base, store, trust, updates


@contextlib.contextmanager
def _serving(console: Console, port: int):
    server = uvicorn.Server(uvicorn.Config(console.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    _wait("the console", lambda: httpx.get(f"{base}/healthz").status_code == 200, 30)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_auditor_and_a_soc_analyst_use_the_console_in_a_browser(console_stack, tmp_path):
    settings, base, store, trust, updates = console_stack
    first, second = (p.version for p in demo_policies())
    db = settings.clickhouse.database
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with browser(width=1280, height=1600, downloads=downloads) as page:
        page.go(base + "/records")  # not signed in: the sign-in page
        assert page.url.endswith("/login")
        _axe(page, "sign-in")
        _shot(page, "01-sign-in")
        page.type("#name", "ada")
        page.type("#password", "not her password!")
        page.click("form.card button[type=submit]")
        _wait("the refusal", lambda: "do not match" in page.text("main"), 10, page)

        _sign_in(page, base, "ada")
        body = page.text("main")
        assert "Chains" in body and "Dead letters" in body and "Open incidents" in body
        assert "mallory@acme.example" in body  # the open incident, on the first screen
        _axe(page, "overview")
        _shot(page, "02-overview")

        # Records: search by identity, as the CLI's --actor
        actor = store.query(f"SELECT actor_id FROM {db}.evidence LIMIT 1").result_rows[0][0]
        page.go(base + "/records")
        page.type("#f-actor", actor)
        page.click("form.filters button[type=submit]")
        _wait("the search", lambda: "actor=" in page.url, 10)
        expected = store.command(f"SELECT count() FROM {db}.evidence WHERE actor_id = {{a:String}}", {"a": actor})
        rows = page.script("return document.querySelectorAll('table.wide tbody tr a').length")
        assert rows == expected > 0
        assert f"aiaudit query --actor '{actor}'" in page.text("main")
        _axe(page, "records")
        _shot(page, "03-records")

        # A record: checked here as the verifier checks it, with its proof bundle to download
        page.click("table.wide tbody tr a")
        _wait("the record page", lambda: "/record?" in page.url, 10)
        main = page.text("main")
        assert "Verified: the record's signature, its emitter's signature, and its inclusion" in main, main[:2000]
        assert "aiaudit verify --export record-" in main
        _axe(page, "record")
        _shot(page, "04-record")
        page.click("a[download]")
        bundle = _wait("the proof bundle downloaded", lambda: [p for p in downloads.glob("record-*.jsonl")], 30)[0]
        checked = verify_export(read_export_file(bundle, lenient=True), trust)
        assert checked.ok and checked.proven == 1, checked.text()  # offline, as the auditor will

        # Reports: make one for the last hour and download its HTML
        page.go(base + "/reports")
        page.type("#since", "1h")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        page.type("#until", now)
        page.click("form.card button[type=submit]")
        # The POST's answer (a redirect to the list, showing the report started) before navigating again:
        # a navigation while the form is still being sent would cancel it, and no report would be made.
        _wait("the report started", lambda: now[:-1] in page.text("main"), 30, page)
        _wait("the report made", lambda: (page.go(base + "/reports") or "report.html" in page.text("main")), 120, page)
        _axe(page, "reports")
        _shot(page, "05-reports")
        page.click("a[href$='/report.html']")
        _wait("the report downloaded", lambda: list(downloads.glob("*-report.html")), 30)

        # The auditor may not acknowledge (no form), and may not open what is not hers
        page.go(base + "/incidents")
        page.click("table.wide tbody tr a")
        _wait("the incident page", lambda: "/incident?" in page.url, 10)
        assert page.script("return document.querySelectorAll('form[action=\"/incident/status\"]').length") == 0
        for path in ("/policies", "/keys", "/access"):
            page.go(base + path)
            _axe(page, path)
            _shot(page, "06" + path.replace("/", "-"))
        # Policies: the second demo version, what changed from the first, line by line
        page.go(base + "/policies")
        assert "routes.default.deny changed" in page.text("main")
        page.click(f"a[href*='{second.split('+')[0]}']")
        _wait("the policy page", lambda: "/policy?" in page.url, 10)
        main = page.text("main")
        assert "Checked: the stored bundle hashes to its version" in main and f"From {first} to {second}" in main
        assert page.script("return [...document.querySelectorAll('pre.diff .diff-add')].map(e => e.textContent)") == [
            '+      "deny": [', '+        "org.customer_name"', "+      ],",
            '+  "version": "2026.11.0"']
        _axe(page, "policy")
        _shot(page, "06-policy")
        page.click("header form.who button")
        _wait("signed out", lambda: page.url.endswith("/login"), 10)

        # The SOC analyst: incidents, acknowledge with a note; records are not hers
        _sign_in(page, base, "sam")
        page.go(base + "/records")
        _wait("the refusal", lambda: "does not open this page" in page.text("main"), 10, page)
        page.go(base + "/incidents?status=open")
        _axe(page, "incidents")
        _shot(page, "07-incidents")
        page.click("table.wide tbody tr a")
        _wait("the incident page", lambda: "/incident?" in page.url, 10)
        _axe(page, "incident")
        page.type("#note", "rotating the leaked key; mallory's team told")
        page.click("button[value=ack]")
        _wait("the acknowledgement sent", lambda: "Sent: acknowledged" in page.text("main"), 30)
        uid = updates[0]["finding_info_list"][0]["uid"]
        _wait("the acknowledgement chained and shown", lambda: (page.go(f"{base}/incident?uid={uid}") or (
            "account:sam" in page.text("table.wide") and "Status\nacknowledged" in page.text("dl.facts"))), 120, page)
        _shot(page, "08-acknowledged")

        # Alerts: grouped by identity, then one acknowledged from the list
        page.go(base + "/alerts?group_by=actor")
        _axe(page, "alerts grouped")
        assert page.script("return document.querySelectorAll('table.wide tbody tr a').length") >= 2
        page.go(base + "/alerts?status=open")
        _axe(page, "alerts")
        _shot(page, "10-alerts")
        alert_uid = page.script("return document.querySelector('form[action=\"/alert/status\"] input[name=uid]').value")
        page.click("form[action='/alert/status'] button[value=ack]")
        _wait("the alert's acknowledgement sent", lambda: "Sent: acknowledged" in page.text("main"), 30, page)

    # The status change is the console's signature for sam, chained; every view an access record for whom it served
    status = store.query(f"SELECT status, actor, note FROM {db}.alert_status WHERE finding_uid = {{u:String}}",
                         {"u": uid}).result_rows
    assert ("acknowledged", "account:sam", "rotating the leaked key; mallory's team told") in status
    _wait("the alert's acknowledgement chained", lambda: store.query(
        f"SELECT status, actor FROM {db}.alert_status WHERE finding_uid = {{u:String}}", {"u": alert_uid}
    ).result_rows == [("acknowledged", "account:sam")], 120)
    def views():
        rows = store.query(f"SELECT principal, via, what FROM {db}.access_log WHERE op = 'console'").result_rows
        done = any(w.startswith("GET /records?actor=") for p, _, w in rows if p == "account:ada") and any(
            w.startswith("GET /incident?uid=") for p, _, w in rows if p == "account:sam")
        return rows if done else None
    seen = _wait("ada's search and sam's incident views recorded", views, 120)
    assert all(via == "soc-console" for _, via, _ in seen)


def _signed_in(base: str, name: str, password: str) -> httpx.Client:
    http = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    login = http.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    r = http.post("/login", data={"csrf": token, "name": name, "password": password})
    assert r.status_code == 303, r.text[:500]
    return http


def test_hostile_requests_are_refused_and_change_nothing(console_stack):
    settings, base, store, _, updates = console_stack
    db = settings.clickhouse.database
    uid = updates[0]["finding_info_list"][0]["uid"]
    anon = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    r = anon.get("/records")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "default-src 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    assert anon.post("/login", data={"name": "ada", "password": PASSWORD["ada"]}).status_code == 403  # no form token

    sam = _signed_in(base, "sam", PASSWORD["sam"])
    cookie = next(c for c in sam.cookies.jar if c.name == "aiaudit_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite").lower() == "strict"
    page = sam.get(f"/incident?uid={uid}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    change = {"csrf": token, "uid": uid, "action": "resolve", "note": "forged"}
    assert sam.post("/incident/status", data={**change, "csrf": "x" * 43}).status_code == 403  # not its token
    assert sam.post("/incident/status", data=change, headers={"origin": "https://evil.example"}).status_code == 403
    assert sam.post("/incident/status", content=b"csrf=" + token.encode() + b"&note=" + b"a" * 70_000,
                    headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413
    assert sam.post("/incident/status", json=change).status_code == 415
    assert sam.post("/incident/status", data={**change, "action": "delete"}).status_code == 400
    assert sam.get("/records").status_code == 403  # the SOC role does not search records

    ada = _signed_in(base, "ada", PASSWORD["ada"])
    ada_token = re.search(r'name="csrf" value="([^"]+)"', ada.get("/reports").text).group(1)
    assert ada.post("/incident/status", data={**change, "csrf": ada_token}).status_code == 403  # an auditor reads only
    assert ada.get("/records", params={"before": "not-a-cursor"}).status_code == 400
    assert ada.get("/records", params={"since": "yesterday-ish"}).status_code == 400
    assert ada.get("/record", params={"origin": "x", "seq": "-1"}).status_code == 400
    assert ada.get("/record", params={"origin": "nope", "seq": "1"}).status_code == 400  # no such record
    assert ada.get("/reports/..%2F..%2Fetc/passwd").status_code == 404
    assert ada.get("/reports/20261201T000000Z-00000000/trust.json").status_code == 404
    assert ada.get("/records", params={"actor": "<script>alert(1)</script>"}).text.count("<script>alert") == 0

    guesser = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    for _ in range(5):  # the throttle: five failures, then even the right password waits
        t = re.search(r'name="csrf" value="([^"]+)"', guesser.get("/login").text).group(1)
        assert guesser.post("/login", data={"csrf": t, "name": "ada", "password": "guess-guess-guess"}
                            ).headers["location"] == "/login?error=failed"
    t = re.search(r'name="csrf" value="([^"]+)"', guesser.get("/login").text).group(1)
    assert guesser.post("/login", data={"csrf": t, "name": "ada", "password": PASSWORD["ada"]}
                        ).headers["location"] == "/login?error=wait"

    from prometheus_client import REGISTRY  # the console's metrics: every refusal counted by page and status

    assert (REGISTRY.get_sample_value("aiaudit_console_requests_total", {"page": "incident_status", "code": "403"})
            or 0) >= 3
    assert (REGISTRY.get_sample_value("aiaudit_console_request_duration_seconds_count", {"page": "records"}) or 0) >= 4
    time.sleep(3)  # nothing forged reached the status chain
    assert store.query(f"SELECT count() FROM {db}.alert_status WHERE note = 'forged'").result_rows == [(0,)]


@contextlib.contextmanager
def _provider(port: int, console_url: str, people: dict):
    """npm's oidc-provider on 127.0.0.1 (tests/browser/oidc_provider.mjs), its client this console."""
    log = OUTPUT.parent / "oidc-provider.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(["node", str(ROOT / "tests" / "browser" / "oidc_provider.mjs"), str(port), "aiaudit-console",
                                 "console-client-secret-for-tests", f"{console_url}/oidc/callback"],
                                env={**os.environ, "PEOPLE": json.dumps(people)}, stdout=fh, stderr=subprocess.STDOUT)
    try:
        issuer = f"http://127.0.0.1:{port}"
        _wait("the OIDC provider", lambda: _answers(f"{issuer}/.well-known/openid-configuration"), 30)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def test_people_sign_in_with_their_organisations_provider(console_stack, tmp_path):
    """OIDC against npm's oidc-provider: code flow with PKCE in the browser; the person and their console
    roles come from the verified ID token; a person the provider gives no console role is not signed in."""
    from aiaudit.pipeline.console.app import public_url
    from aiaudit.pipeline.console.oidc import OidcSignIn

    settings, _, store, trust, _ = console_stack
    port = free_port_pair()
    provider_port = port + 1  # the pair: both free
    people = {"carol": {"email": "carol@acme.example", "aiaudit_roles": ["auditor", "not-a-console-role"]},
              "dave": {"email": "dave@acme.example", "aiaudit_roles": ["Domain Users"]}}
    console_settings = settings.updated(console={"port": port, "oidc_client_id": "aiaudit-console",
                                                 "oidc_client_secret": SecretStr("console-client-secret-for-tests")})
    with _provider(provider_port, public_url(console_settings), people) as issuer:
        console_settings = console_settings.updated(console={"oidc_issuer": issuer})
        key = next((settings.signing.keys_dir / ANALYSTS_DIR).glob("soc-console.*.console.key"))
        console = Console(console_settings, trust=trust, signer=load_status_signer(key), operator=None,
                          accounts=None, oidc=OidcSignIn.from_settings(console_settings, public_url(console_settings)))
        with _serving(console, port) as base:
            for who, expect_in in (("dave", False), ("carol", True)):
                with browser(width=1280, height=1200) as page:  # each person their own browser
                    page.go(base + "/login")
                    assert page.script("return document.querySelectorAll('#password').length") == 0  # no account form
                    if who == "dave":
                        _axe(page, "sign-in (provider)")
                    page.click("a.button[href='/oidc/login']")
                    _wait("the provider's sign-in", lambda: page.url.startswith(issuer), 30, page)
                    page.type("input[name=login]", who)
                    page.type("input[name=password]", "any")
                    page.click("button[type=submit]")
                    _wait("the provider's consent, or back", lambda: page.url.startswith(base) or (
                        page.script("return document.querySelectorAll('input[name=login]').length") == 0), 30, page)
                    if not page.url.startswith(base):
                        page.click("button[type=submit]")  # "Continue": the console may read who you are, your roles
                    _wait("back at the console", lambda: page.url.startswith(base), 30, page)
                    if expect_in:
                        _wait("the overview", lambda: page.url.rstrip("/") == base and "Overview" in page.text("h1"),
                              30, page)
                        assert "oidc:carol@acme.example (auditor)" in page.text("header")
                        _shot(page, "09-signed-in-with-oidc")
                        page.go(base + "/records")
                        assert "Records" in page.text("h1")
                    else:
                        _wait("refused", lambda: page.url.endswith("/login?error=oidc"), 30, page)
                        assert "gave you no console role" in page.text("main")
    _wait("carol's search recorded", lambda: any(w.startswith("GET /records") for (w,) in store.query(
        f"SELECT what FROM {settings.clickhouse.database}.access_log WHERE principal = 'oidc:carol@acme.example'"
    ).result_rows), 120)
