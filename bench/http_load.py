"""A load generator of its own process (the benches start it; it prints one JSON line).

    python bench/http_load.py URL --body FILE [--header 'name: value'] [--concurrency 1]
                              [--requests N | --seconds S] [--warmup 200]

`concurrency` clients, each on one HTTP/1.1 keep-alive connection (aiohttp, which costs the
shared cores a quarter of what httpx does), POST the body in a loop; the first `warmup`
requests (all clients together) are not counted. Prints {"done", "seconds", "rate", "p50_ms",
"p90_ms", "p99_ms", "cpu_s"} (the CPU of this process over the timed window); a non-200 answer ends the run with its status (exit 1): a
bench must not count refusals as answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import aiohttp


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else float("nan")


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, requests: int | None,
              seconds: float | None, warmup: int) -> dict[str, float]:
    latencies: list[float] = []
    started = [0]
    begun = {"t": 0.0, "cpu": 0.0}
    stop_at = [float("inf")]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def worker() -> None:
            while True:
                n = started[0]
                if requests is not None and n >= warmup + requests:
                    return
                if time.perf_counter() >= stop_at[0]:
                    return
                started[0] = n + 1
                if n == warmup:  # the timed window opens with the first counted request
                    begun["t"], begun["cpu"] = time.perf_counter(), _cpu_s()
                    if seconds is not None:
                        stop_at[0] = begun["t"] + seconds
                t = time.perf_counter()
                async with client.post(url, data=body, headers=headers) as r:
                    text = await r.read()
                if r.status != 200:
                    raise SystemExit(f"{url}: {r.status} {text[:300]!r}")
                if n >= warmup:
                    latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - begun["t"], _cpu_s() - begun["cpu"]
    return {"done": len(latencies), "seconds": wall, "rate": len(latencies) / wall, "cpu_s": cpu,
            "p50_ms": pct(latencies, 50) * 1e3, "p90_ms": pct(latencies, 90) * 1e3, "p99_ms": pct(latencies, 99) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--body", type=Path, required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    if (args.requests is None) == (args.seconds is None):
        ap.error("give --requests or --seconds")
    headers = {"content-type": "application/json"}
    for h in args.header:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(run(args.url, args.body.read_bytes(), headers, args.concurrency, args.requests, args.seconds,
                          args.warmup))
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
