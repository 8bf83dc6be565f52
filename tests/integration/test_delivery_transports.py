"""Sending findings to real receivers: an HTTP server that checks the webhook signature (and a
Splunk HEC stand-in that checks the token), and rsyslogd from the Debian packages over TCP and
TLS, whose parsed fields are asserted, not just that a connection was made. The delivery agent
that drives these (Faust, issue 11 part 3) is not built yet: this is one attempt per call."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from aiaudit.detectors.rules import RuleHit
from aiaudit.pipeline.deliver.formats import WebhookRefused, verify_webhook
from aiaudit.pipeline.deliver.policy import Destination, delivery_uid
from aiaudit.pipeline.deliver.send import Target, send
from aiaudit.pipeline.score.ocsf import detection_finding

pytestmark = pytest.mark.integration
SECRET = b"webhook-secret-for-the-test"
NOW = 1_795_950_000.0


def finding(actor: str = "alice@acme.example") -> dict:
    event = {"actor": {"id": actor, "type": "workforce"}, "decision": "allow", "event_id": "e1",
             "occurred_at": "2026-11-29T10:00:00.000000Z", "gen_ai_provider_name": "openai",
             "gen_ai_request_model": "gpt-4o", "route": "chat"}
    return detection_finding(origin="acme/prod/ai.requests/p1/g1", seq=42, leaf_hash="ab" * 32, event=event,
                             score=0.41, severity="high", explanation=[], model_version="m1",
                             detected_at_ms=int(NOW * 1000), rule_hits=[RuleHit("prompt_injection", "high", "2 markers")])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _with_receiver(handler, coro_of_url):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await coro_of_url(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_webhook_deliveries_verify_at_the_receiver_and_failures_are_recorded():
    received: list[dict] = []

    async def receiver(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == "/moved":
            return web.Response(status=307, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        if request.path == "/down":
            return web.Response(status=503, text="maintenance")
        try:
            received.append({"doc": verify_webhook(SECRET, dict(request.headers), body, now=NOW + 2),
                             "headers": dict(request.headers)})
        except WebhookRefused as exc:
            return web.Response(status=401, text=str(exc))
        return web.Response(status=202, text="queued")

    f = finding()

    async def run(session, url):
        dest = Destination("soc-webhook", "webhook")
        ok = await send(session, Target(dest, url=f"{url}/hook", secret=SECRET), f, attempt=1, now=NOW)
        forged = await send(session, Target(dest, url=f"{url}/hook", secret=b"not-the-secret"), f, attempt=1, now=NOW)
        moved = await send(session, Target(dest, url=f"{url}/moved", secret=SECRET), f, attempt=2, now=NOW)
        down = await send(session, Target(dest, url=f"{url}/down", secret=SECRET), f, attempt=3, now=NOW)
        closed = await send(session, Target(dest, url=f"http://127.0.0.1:{free_port()}/x", secret=SECRET), f,
                            attempt=4, now=NOW)
        return ok, forged, moved, down, closed

    ok, forged, moved, down, closed = asyncio.run(_with_receiver(receiver, run))
    uid = delivery_uid(Destination("soc-webhook", "webhook"), f["finding_info"]["uid"])
    assert (ok.outcome, ok.status, ok.response, ok.delivery_uid) == ("delivered", "202", "queued", uid)
    assert len(received) == 1 and received[0]["doc"] == {"delivery": uid, "finding": f}  # the finding, whole
    assert received[0]["headers"]["X-Aiaudit-Delivery"] == uid
    assert received[0]["doc"]["finding"]["unmapped"]["chain"] == {"origin": "acme/prod/ai.requests/p1/g1", "seq": 42,
                                                                  "leaf_hash": "ab" * 32}
    assert (forged.outcome, forged.status) == ("failed", "401") and "signature" in forged.response
    assert (moved.outcome, moved.status) == ("failed", "307")  # never followed
    assert (down.outcome, down.status, down.response, down.attempt) == ("failed", "503", "maintenance", 3)
    assert closed.outcome == "failed" and closed.status.startswith("error: ")


def test_splunk_hec_gets_the_token_and_one_event():
    seen: list[tuple[str, dict]] = []

    async def hec(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization", ""), orjson.loads(await request.read())))
        ok = request.headers.get("Authorization") == "Splunk 11111111-2222-3333-4444-555555555555"
        return web.json_response({"text": "Success", "code": 0} if ok else {"text": "Invalid token", "code": 4},
                                 status=200 if ok else 403)

    f = finding()

    async def run(session, url):
        dest = Destination("splunk", "splunk_hec")
        good = Target(dest, url=f"{url}/services/collector/event", secret=b"11111111-2222-3333-4444-555555555555",
                      hostname="scorer-1")
        bad = Target(dest, url=f"{url}/services/collector/event", secret=b"wrong")
        return await send(session, good, f, attempt=1, now=NOW), await send(session, bad, f, attempt=1, now=NOW)

    good, bad = asyncio.run(_with_receiver(hec, run))
    assert good.outcome == "delivered" and '"Success"' in good.response
    assert bad.outcome == "failed" and bad.status == "403"
    auth, event = seen[0]
    assert event["host"] == "scorer-1" and event["sourcetype"] == "ocsf:detection_finding" and event["event"] == f
    assert "wrong" not in repr(Target(Destination("splunk", "splunk_hec"), secret=b"wrong"))  # secrets stay out of logs


def _certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (the receiver's), made for the test."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiaudit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths


FIELDS = "%syslogfacility%|%syslogseverity%|%hostname%|%app-name%|%msgid%|%structured-data%|%msg%\\n"


def _rsyslogd(folder: Path, port: int, tls: tuple[Path, Path, Path] | None) -> subprocess.Popen[bytes]:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        pytest.fail("rsyslogd is not installed (Debian: apt-get install rsyslog rsyslog-gnutls; .ci/run does)")
    out = folder / "received.log"
    driver = ""
    if tls:
        ca, cert, key = tls
        driver = (f'global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}" '
                  f'DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")\n')
    conf = folder / "rsyslog.conf"
    imtcp = ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"' if tls else ""
    conf.write_text(  # only our messages reach the file: rsyslogd's own (start, TLS errors) do not
        f'global(workDirectory="{folder}" maxMessageSize="64k")\n{driver}'
        f'module(load="imtcp"{imtcp})\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
        f'template(name="fields" type="string" string="{FIELDS}")\n'
        f'if $app-name == "aiaudit" then {{ action(type="omfile" file="{out}" template="fields") }}\n')
    check = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None and time.monotonic() < deadline, (proc.stdout.read() if proc.stdout else b"")[-2000:]
        time.sleep(0.1)


def _received(folder: Path, want: int) -> list[list[str]]:
    deadline = time.monotonic() + 15
    path = folder / "received.log"
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= want:
            return [line.split("|", 6) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"rsyslogd wrote {path.read_text() if path.exists() else 'nothing'}")


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_syslog_reaches_rsyslogd_which_parses_rfc5424_fields(tmp_path, tls):
    port = free_port()
    certs = _certs(tmp_path) if tls else None
    proc = _rsyslogd(tmp_path, port, certs)
    hostile = finding('eve"] [x@1 a="b"] <!channel>')
    try:
        async def run():
            async with aiohttp.ClientSession() as session:
                dest = Destination("syslog", "syslog")
                target = Target(dest, host="127.0.0.1", port=port, tls=tls, ca_file=certs[0] if certs else None,
                                hostname="scorer-1")
                first = await send(session, target, finding(), attempt=1, now=NOW)
                second = await send(session, target, hostile, attempt=1, now=NOW)
                untrusted = await send(session, Target(dest, host="127.0.0.1", port=port, tls=True, hostname="x"),
                                       finding(), attempt=1, now=NOW) if tls else None
                return first, second, untrusted

        first, second, untrusted = asyncio.run(run())
        assert first.outcome == second.outcome == "delivered"
        rows = _received(tmp_path, 2)
    finally:
        proc.terminate()
        proc.wait(10)
    facility, severity, host, app, msgid, sd, msg = rows[0]
    assert (facility, severity, host, app, msgid) == ("13", "3", "scorer-1", "aiaudit", "ocsf2004")
    assert 'origin="acme/prod/ai.requests/p1/g1"' in sd and 'seq="42"' in sd and 'detectors="prompt_injection"' in sd
    assert orjson.loads(msg.lstrip("\ufeff").strip())["finding_info"]["uid"] == finding()["finding_info"]["uid"]
    # The hostile actor id stays inside its parameter value: still one SD element, the same fields after it.
    assert rows[1][5].startswith("[aiaudit@32473 ") and rows[1][5].count('origin="') == 1 and rows[1][2] == "scorer-1"
    if tls:  # without the receiver's CA the certificate does not verify: nothing is sent in the clear
        assert untrusted.outcome == "failed" and "SSL" in untrusted.status + untrusted.response
        assert len(rows) == 2


def test_request_events_reach_rsyslogd_one_message_each_within_the_size_limit(tmp_path):
    """A batch of request events over one TCP connection: rsyslogd parses each as its own RFC 5424
    message (msgid ocsf6003, the record's coordinates in structured data, the OCSF event in MSG);
    an event too large for a message goes without its raw_data, its hash kept."""
    from aiaudit.pipeline.deliver.request_events import syslog_request
    from aiaudit.pipeline.deliver.send import write_syslog
    from aiaudit.pipeline.keys import Ed25519Signer
    from aiaudit.pipeline.query.ocsf import api_activity
    from aiaudit.pipeline.store import evidence
    from tests.unit.helpers import build_chain

    events = [api_activity(dict(zip(evidence.COLUMNS, evidence.row(r))), product_version="0.1.0")
              for r in build_chain(3, Ed25519Signer.generate())]
    big = {**events[2], "raw_data": "x" * 20_000}
    port = free_port()
    proc = _rsyslogd(tmp_path, port, None)
    try:
        target = Target(Destination("siem", "syslog", send="requests"), host="127.0.0.1", port=port, hostname="fwd-1")
        asyncio.run(write_syslog(target, [syslog_request(e, hostname="fwd-1") for e in [*events[:2], big]], 10))
        rows = _received(tmp_path, 3)
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(rows) == 3
    for row, event in zip(rows, [*events[:2], big], strict=True):
        facility, severity, host, app, msgid, sd, msg = row
        assert (facility, host, app, msgid) == ("13", "fwd-1", "aiaudit", "ocsf6003")
        assert severity == ("5" if event["status_id"] == 2 else "6")
        got = orjson.loads(msg.lstrip("\ufeff").strip())
        integrity = event["unmapped"]["aiaudit"]
        assert f'seq="{integrity["seq"]}"' in sd and f'leaf="{integrity["leaf_hash"]}"' in sd
        assert got["metadata"]["uid"] == event["metadata"]["uid"]
        assert got["raw_data_hash"] == event["raw_data_hash"]
    assert "raw_data" in orjson.loads(rows[0][6].lstrip("\ufeff").strip())
    assert "raw_data" not in orjson.loads(rows[2][6].lstrip("\ufeff").strip())
