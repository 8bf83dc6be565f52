"""The gateway's added latency and its throughput against the vendor called directly (prints
figures; asserts nothing).

    python bench/gateway_bench.py [--requests 2000] [--concurrency 20] [--seconds 15] [--rounds 3]

A fake OpenAI-compatible vendor that answers without delay (pipeline/ops/vendor_standin.py) and
the gateway (`aiaudit gateway serve`) run as their own processes, with a local broker for the
evidence; the load comes from bench/http_load.py, a process of its own (HTTP/1.1 keep-alive).

Each round runs the vendor direct and through the gateway back to back (the order swapped every
round, so drift hits both alike): `--requests` one at a time (p50/p99 of each, and what the
gateway adds at the median), then `--concurrency` clients for `--seconds` (requests/s of each,
the gateway's as a share of the direct path's, and the CPU per request of the gateway, the
vendor, the load generator and the broker: the broker's with no events in the direct run). Then
every answered request must have its event on the requests topic. Vendor, gateway, load generator
and broker share the machine's cores.

Uses its own broker (port 19492) and state folder (.aiaudit/gateway-bench), removed afterwards.
"""

from __future__ import annotations

import argparse
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
    content: {content}
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and every process under it (`--workers`) have used."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
    tree, grew = {pid}, True
    while grew:
        more = {p for p, f in stats.items() if int(f[1]) in tree} - tree
        tree, grew = tree | more, bool(more)
    ticks = sum(int(stats[p][11]) + int(stats[p][12]) for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def generate(url: str, key: str, body: Path, concurrency: int, *, requests: int | None = None,
             seconds: float | None = None, warmup: int = 200) -> dict[str, float]:
    """One run of the load generator (bench/http_load.py, a process of its own) against `url`."""
    cmd = [sys.executable, str(Path(__file__).with_name("http_load.py")), f"{url}/v1/chat/completions",
           "--body", str(body), "--header", f"authorization: Bearer {key}", "--concurrency", str(concurrency),
           "--warmup", str(warmup)]
    cmd += ["--requests", str(requests)] if requests is not None else ["--seconds", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        sys.exit(f"load generator against {url}: exit {done.returncode}: {done.stderr[-600:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(direct: str, gateway: str, key: str, body: Path, rounds: int, requests: int, concurrency: int,
                seconds: float, vendor_pid: int, gateway_pid: int, broker_pid: int) -> int:
    """The direct and the gateway runs alternated (their order swapped every round), one request at a
    time and then `concurrency` at a time. Returns the requests the gateway answered (events due)."""
    added, ratios, answered = [], [], 0
    for r in range(rounds):
        order = (("direct", direct), ("gateway", gateway))
        order = order if r % 2 == 0 else order[::-1]
        one = {name: generate(url, key, body, 1, requests=requests) for name, url in order}
        answered += requests + 200
        many, cpu = {}, {}
        for name, url in order:
            before = cpu_s(vendor_pid), cpu_s(gateway_pid), cpu_s(broker_pid)
            many[name] = generate(url, key, body, concurrency, seconds=seconds, warmup=concurrency * 20)
            served = many[name]["done"] + concurrency * 20  # the warm-up's requests too: the CPU counts them
            cpu[name] = ((cpu_s(vendor_pid) - before[0]) / served, (cpu_s(gateway_pid) - before[1]) / served,
                         (cpu_s(broker_pid) - before[2]) / served)
        answered += many["gateway"]["done"] + concurrency * 20
        d1, g1, dn, gn = one["direct"], one["gateway"], many["direct"], many["gateway"]
        added.append(g1["p50_ms"] - d1["p50_ms"])
        ratios.append(gn["rate"] / dn["rate"])
        print(f"  round {r + 1} ({order[0][0]} first)")
        line("    one at a time: direct p50 / p99", f"{d1['p50_ms']:.2f} / {d1['p99_ms']:.2f} ms")
        line("    one at a time: gateway p50 / p99", f"{g1['p50_ms']:.2f} / {g1['p99_ms']:.2f} ms "
             f"(added at the median {g1['p50_ms'] - d1['p50_ms']:.2f} ms)")
        line(f"    {concurrency} at a time: direct", f"{dn['rate']:,.0f} requests/s, p50 {dn['p50_ms']:.1f} ms, "
             f"p99 {dn['p99_ms']:.1f} ms; vendor CPU {cpu['direct'][0] * 1e6:,.0f} us/request, "
             f"load generator {dn['cpu_s'] / dn['done'] * 1e6:,.0f}, broker (no events) {cpu['direct'][2] * 1e6:,.0f}")
        line(f"    {concurrency} at a time: gateway", f"{gn['rate']:,.0f} requests/s = {gn['rate'] / dn['rate']:.0%} of "
             f"direct, p50 {gn['p50_ms']:.1f} ms, p99 {gn['p99_ms']:.1f} ms; gateway CPU "
             f"{cpu['gateway'][1] * 1e6:,.0f} us/request, vendor {cpu['gateway'][0] * 1e6:,.0f}, "
             f"load generator {gn['cpu_s'] / gn['done'] * 1e6:,.0f}, broker {cpu['gateway'][2] * 1e6:,.0f}")
    line("added at the median, one at a time (median of rounds)", f"{statistics.median(added):.2f} ms "
         f"(rounds: {', '.join(f'{a:.2f}' for a in added)}; target <= 1 ms)")
    line(f"throughput at {concurrency} clients, gateway / direct", f"{statistics.median(ratios):.0%} "
         f"(rounds: {', '.join(f'{x:.0%}' for x in ratios)}; target >= 70%)")
    return answered


def walk_cost(n: int = 2000) -> None:
    """µs to check the shape of, walk and classify every string of a 2 KB chat request with tools
    (what the gateway does to every request before deciding), against classifying the message
    texts alone (what it did before), measured in this process."""
    from aiaudit.pipeline.gateway import shape, wire
    from aiaudit.pipeline.gateway.policy import parse_policy

    policy = parse_policy(POLICY.replace("{content}", "commitments"))
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
    ap.add_argument("--requests", type=int, default=2000, help="timed requests a run, one at a time")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15, help="timed seconds a run, `concurrency` at a time")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gateway-workers", type=int, default=1, metavar="N", help="`gateway serve --workers N`")
    ap.add_argument("--content", choices=("none", "commitments", "full"), default="commitments",
                    help="what the route keeps (commitments, the default: a record key file made for every request)")
    args = ap.parse_args()

    base = Path(".aiaudit/gateway-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    key, digest = new_api_key()
    vendor_port, gw_port = free_port(), free_port()
    (base / "gateway.yaml").write_text(json.dumps({
        "upstreams": {"openai": {"base_url": f"http://127.0.0.1:{vendor_port}/v1"}},
        "api_keys": [{"sha256": digest, "id": "bench@acme", "role": "engineer"}]}))
    (base / "policy.yaml").write_text(POLICY.replace("{content}", args.content))
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
        procs.append(subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.cli", "gateway", "serve", "--workers",
                                       str(args.gateway_workers)], env=env,
                                      stdout=glog.open("wb"), stderr=subprocess.STDOUT))
        direct, gateway = f"http://127.0.0.1:{vendor_port}", f"http://127.0.0.1:{gw_port}"
        wait_http(f"{direct}/jwks.json", procs[0], vlog)
        wait_http(f"{gateway}/healthz", procs[1], glog)
        before = sum(end_offsets(s, s.kafka.requests_topic, 4).values())

        print("0. classification work per request, in this process")
        walk_cost()
        body = base / "request.json"
        body.write_bytes(json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}).encode())
        print(f"1. the vendor direct and through the gateway (route content: {args.content}; "
              f"{args.gateway_workers} gateway process(es)), interleaved, "
              f"{args.rounds} rounds: {args.requests} "
              f"requests one at a time, then {args.concurrency} clients for {args.seconds:.0f} s "
              f"({len(PROMPT)}-character prompt; the load generator is a process of its own, HTTP/1.1 keep-alive)")
        expected = before + interleaved(direct, gateway, key, body, args.rounds, args.requests, args.concurrency,
                                        args.seconds, procs[0].pid, procs[1].pid, kafka.pid() or 0)
        deadline = time.monotonic() + 60
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
