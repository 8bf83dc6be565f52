"""The gateway's added latency and its throughput on this machine (prints figures; asserts nothing).

    python bench/gateway_bench.py [--requests 2000] [--concurrency 16] [--seconds 15]

A fake OpenAI-compatible vendor (pipeline/ops/vendor_standin.py) and the gateway
(`aiaudit gateway serve`) run as their own processes, with a local broker for the evidence.

1. Latency, one request at a time: chat completions straight to the fake vendor and through
   the gateway, interleaved so drift hits both alike; p50/p99 of each and the difference
   (the gateway's added latency: authentication, classification, policy, forwarding, event).
2. Throughput under concurrent load through the gateway: requests/s, p50/p99, the gateway
   process's CPU per request, and a check that every answered request has its event on the
   requests topic. Vendor, gateway, load generator and broker share the machine's cores.

Uses its own broker (port 19492) and state folder (.aiaudit/gateway-bench), removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline.contract.emitter_keys import new_emitter_key  # noqa: E402
from aiaudit.pipeline.gateway.identity import new_api_key  # noqa: E402
from aiaudit.pipeline.kafka.io import end_offsets  # noqa: E402
from aiaudit.pipeline.settings import (  # noqa: E402
    EmitterSettings,
    GatewaySettings,
    KafkaSettings,
    LocalSettings,
    Settings,
    SigningSettings,
)
from tests.integration.support import settings_env  # noqa: E402

PORT = 19492
PROMPT = ("Summarise the attached quarterly plan for the leadership team, keep it under 200 words, "
          "and list three risks with an owner for each. ") * 4  # ~500 characters, nothing sensitive
POLICY = """
policy_id: bench
version: "1"
vendors: {openai: {max_level: internal}}
retention_days: {standard: 30}
routes:
  default:
    roles: [engineer]
    vendors: {openai: ["gpt-*"]}
    redact: ["pii.*"]
    deny: ["secret.*"]
    retention_scope: standard
    content: commitments
    fail: closed
"""


def line(name: str, value: str) -> None:
    print(f"  {name:<52} {value}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the process exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within 60 s")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def ms(v: float) -> str:
    return f"{v * 1000:.2f} ms"


def sequential(direct: str, gateway: str, key: str, n: int) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    with httpx.Client(timeout=10) as client:
        for i in range(n + 200):
            for name, url in (("direct", f"{direct}/v1/chat/completions"), ("gateway", f"{gateway}/v1/chat/completions")):
                t = time.perf_counter()
                r = client.post(url, json=body, headers={"authorization": f"Bearer {key}"})
                elapsed = time.perf_counter() - t
                if r.status_code != 200:
                    sys.exit(f"{name}: {r.status_code} {r.text[:300]}")
                if i >= 200:  # after warm-up
                    times[name].append(elapsed)
    d, g = times["direct"], times["gateway"]
    line("straight to the vendor p50 / p99", f"{ms(pct(d, 50))} / {ms(pct(d, 99))}")
    line("through the gateway p50 / p99", f"{ms(pct(g, 50))} / {ms(pct(g, 99))}")
    line("added by the gateway p50 / p99", f"{ms(pct(g, 50) - pct(d, 50))} / {ms(pct(g, 99) - pct(d, 99))}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(gateway: str, key: str, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    # aiohttp as the load generator: it costs the shared two cores a quarter of what httpx does.
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    latencies: list[float] = []
    done = 0
    stop_at = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                async with client.post(f"{gateway}/v1/chat/completions", data=body, headers=headers) as r:
                    text = await r.read()
                latencies.append(time.perf_counter() - t)
                if r.status != 200:
                    raise SystemExit(f"gateway: {r.status} {text[:300]!r}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, latencies


def walk_cost(n: int = 2000) -> None:
    """µs to check the shape of, walk and classify every string of a 2 KB chat request with tools
    (what the gateway does to every request before deciding), against classifying the message
    texts alone (what it did before), measured in this process."""
    from aiaudit.pipeline.gateway import shape, wire
    from aiaudit.pipeline.gateway.policy import parse_policy

    policy = parse_policy(POLICY)
    body = {"model": "gpt-4o", "user": "bench", "messages": [
        {"role": "system", "content": "You are a careful assistant for the finance team. " * 3},
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "lookup_invoice", "arguments": '{"invoice": "INV-2026-0042", "fields": ["total", "due"]}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"total": 1200, "due": "2026-12-01"}'}],
        "tools": [{"type": "function", "function": {
            "name": f"tool_{i}", "description": "Looks up an invoice by its number and returns its fields.",
            "parameters": {"type": "object", "properties": {"invoice": {"type": "string", "description": "number"}},
                           "required": ["invoice"]}}} for i in range(4)]}
    size = len(json.dumps(body))
    t = time.perf_counter()
    for _ in range(n):
        shape.check("chat", body)
        policy.classifier.classify_all(shape.strings(body))
    walked = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        policy.classifier.classify_all(wire.request_texts("chat", body) or [])
    texts_only = (time.perf_counter() - t) / n * 1e6
    line(f"shape check + every string classified ({size:,}-byte chat with tools)", f"{walked:,.0f} us")
    line("message texts alone classified (before: tool strings unseen)", f"{texts_only:,.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15)
    args = ap.parse_args()

    base = Path(".aiaudit/gateway-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    key, digest = new_api_key()
    vendor_port, gw_port = free_port(), free_port()
    (base / "gateway.yaml").write_text(json.dumps({
        "upstreams": {"openai": {"base_url": f"http://127.0.0.1:{vendor_port}/v1"}},
        "api_keys": [{"sha256": digest, "id": "bench@acme", "role": "engineer"}]}))
    (base / "policy.yaml").write_text(POLICY)
    # The gateway signs every event with its emitter key (the default), so the figures include it.
    emitter_key, _, _ = new_emitter_key(base / "keys" / "emitters", "gateway-bench", base / "keys" / "emitters" / "jwks.json")
    s = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", partitions=4),
                 signing=SigningSettings(keys_dir=base / "keys"), emitter=EmitterSettings(key_file=emitter_key),
                 gateway=GatewaySettings(config_file=base / "gateway.yaml", policy_file=base / "policy.yaml",
                                         port=gw_port, gateway_id="bench"),
                 local=LocalSettings(state_dir=base, kafka_port=PORT, controller_port=PORT + 1))
    kafka = LocalKafka(s)
    kafka.up()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ensure_topics(s)
        env = settings_env(s)
        vlog, glog = base / "vendor.log", base / "gateway.log"
        procs.append(subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.ops.vendor_standin", str(vendor_port)],
                                      stdout=vlog.open("wb"), stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "gateway", "serve"], env=env,
                                      stdout=glog.open("wb"), stderr=subprocess.STDOUT))
        direct, gateway = f"http://127.0.0.1:{vendor_port}", f"http://127.0.0.1:{gw_port}"
        wait_http(f"{direct}/jwks.json", procs[0], vlog)
        wait_http(f"{gateway}/healthz", procs[1], glog)
        before = sum(end_offsets(s, s.kafka.requests_topic, 4).values())

        print("0. classification work per request, in this process")
        walk_cost()
        print(f"1. added latency, one request at a time ({args.requests} each way, {len(PROMPT)}-character prompt)")
        sequential(direct, gateway, key, args.requests)

        print(f"2. throughput through the gateway ({args.concurrency} concurrent clients, {args.seconds:.0f} s)")
        t, cpu = time.perf_counter(), cpu_s(procs[1].pid)
        done, lat = asyncio.run(load(gateway, key, args.concurrency, args.seconds))
        wall, cpu = time.perf_counter() - t, cpu_s(procs[1].pid) - cpu
        line("requests answered", f"{done:,} ({done / wall:,.0f} requests/s)")
        line("latency under load p50 / p99", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))}")
        line("gateway CPU per request (one process)", f"{cpu / done * 1e6:,.0f} us (~{done / cpu:,.0f} requests/s per core)")
        deadline = time.monotonic() + 60
        expected = before + args.requests + 200 + done
        while (events := sum(end_offsets(s, s.kafka.requests_topic, 4).values())) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        line("events on the requests topic / requests answered", f"{events - before:,} / {expected - before:,}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
