"""What aiaudit's callback costs a LiteLLM proxy (prints figures; asserts nothing).

    python bench/litellm_bench.py [--requests 500] [--concurrency 20] [--seconds 15]

Three LiteLLM proxies from .venv-litellm (`make litellm-env`), the same config in front of the same
vendor stand-in: one without callbacks, one with a callback that does nothing (what LiteLLM's own
callback machinery costs: it builds the logging payload only for a callback), and one with
aiaudit's (classifying, signing each event with an emitter key and sending it to a local broker):

1. Latency, one request at a time, interleaved so drift hits both alike: p50/p99 of each and the
   difference (what the callback adds to a request).
2. Throughput at `--concurrency` clients, each proxy in turn: requests/s, p50/p99 under load, and
   the proxy process's CPU per request (the callback's sender thread included); then a check that
   every request the aiaudit proxy answered has its event on the requests topic.

Proxies, vendor, load generator and broker share the machine's two cores. Uses its own broker
(port 19792) and state folder (.aiaudit/litellm-bench), removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline.contract.emitter_keys import new_emitter_key  # noqa: E402
from aiaudit.pipeline.kafka.io import end_offsets  # noqa: E402
from aiaudit.pipeline.settings import EmitterSettings, KafkaSettings, LocalSettings, Settings  # noqa: E402
from bench.gateway_bench import PROMPT, cpu_s, free_port, line, load, ms, pct, wait_http  # noqa: E402
from tests.integration.support import settings_env  # noqa: E402

PORT = 19792
ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
MASTER = "sk-bench-master"
CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: os.environ/VENDOR_URL
      api_key: sk-bench-vendor
litellm_settings:
  num_retries: 0
{callbacks}
general_settings:
  master_key: {master}
"""


NOOP = """
from litellm.integrations.custom_logger import CustomLogger


class Noop(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        kwargs.get("standard_logging_object")


noop = Noop()
"""


def start_proxy(folder: Path, port: int, env: dict[str, str], callback: str) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG.format(
        callbacks=f"  callbacks: {callback}" if callback else "", master=MASTER))
    shutil.copy(ROOT / "examples" / "litellm" / "aiaudit_callback.py", folder / "aiaudit_callback.py")
    (folder / "noop_callback.py").write_text(NOOP)
    log = folder / "proxy.log"
    proc = subprocess.Popen([str(LITELLM), "--config", "config.yaml", "--port", str(port), "--host", "127.0.0.1",
                             "--num_workers", "1"], cwd=folder, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, log)
    return proc


def sequential(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}
    times: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client(timeout=30) as client:
        for i in range(n + 100):
            for name, url in urls.items():
                t = time.perf_counter()
                r = client.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {MASTER}"})
                elapsed = time.perf_counter() - t
                if r.status_code != 200:
                    sys.exit(f"{name}: {r.status_code} {r.text[:300]}")
                if i >= 100:  # after warm-up
                    times[name].append(elapsed)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15)
    args = ap.parse_args()
    if not LITELLM.exists():
        sys.exit(f"{LITELLM} is missing: `make litellm-env` installs LiteLLM's proxy")

    base = Path(".aiaudit/litellm-bench").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    emitter_key, _, _ = new_emitter_key(base / "keys" / "emitters", "litellm-bench",
                                        base / "keys" / "emitters" / "jwks.json")
    s = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{PORT}", partitions=4),
                 emitter=EmitterSettings(key_file=emitter_key),
                 local=LocalSettings(state_dir=base, kafka_port=PORT, controller_port=PORT + 1))
    kafka = LocalKafka(s)
    kafka.up()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ensure_topics(s)
        vendor_port = free_port()
        env = {**settings_env(s), "VENDOR_URL": f"http://127.0.0.1:{vendor_port}/v1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        vlog = base / "vendor.log"
        procs.append(subprocess.Popen([sys.executable, "-m", "aiaudit.pipeline.ops.vendor_standin", str(vendor_port)],
                                      stdout=vlog.open("wb"), stderr=subprocess.STDOUT, env=env))
        wait_http(f"http://127.0.0.1:{vendor_port}/jwks.json", procs[0], vlog)
        callbacks = {"LiteLLM alone": "", "LiteLLM + a no-op callback": "noop_callback.noop",
                     "LiteLLM + aiaudit": "aiaudit_callback.aiaudit"}
        ports = {name: free_port() for name in callbacks}
        proxies = {name: start_proxy(base / f"proxy-{i}", port, env, callbacks[name])
                   for i, (name, port) in enumerate(ports.items())}
        procs += proxies.values()
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        before = sum(end_offsets(s, s.kafka.requests_topic, 4).values())

        print(f"1. latency, one request at a time ({args.requests} each, interleaved, {len(PROMPT)}-character prompt)")
        times = sequential(urls, args.requests)
        alone, noop, with_cb = times["LiteLLM alone"], times["LiteLLM + a no-op callback"], times["LiteLLM + aiaudit"]
        for name, t in times.items():
            line(f"{name} p50 / p99", f"{ms(pct(t, 50))} / {ms(pct(t, 99))}")
        line("added by aiaudit's callback p50 / p99 (against none)",
             f"{ms(pct(with_cb, 50) - pct(alone, 50))} / {ms(pct(with_cb, 99) - pct(alone, 99))}")
        line("added by aiaudit's callback p50 / p99 (against a no-op one)",
             f"{ms(pct(with_cb, 50) - pct(noop, 50))} / {ms(pct(with_cb, 99) - pct(noop, 99))}")

        print(f"2. throughput ({args.concurrency} concurrent clients, {args.seconds:.0f} s each, one proxy at a time)")
        figures = {}
        for name, url in urls.items():
            pid = proxies[name].pid
            t, cpu = time.perf_counter(), cpu_s(pid)
            done, lat = asyncio.run(load(url, MASTER, args.concurrency, args.seconds))
            time.sleep(2)  # the callback's sender finishes what it holds: its CPU is counted
            wall, cpu = time.perf_counter() - t - 2, cpu_s(pid) - cpu
            figures[name] = (done / wall, cpu / done)
            line(f"{name}: requests/s", f"{done / wall:,.0f} ({done:,} answered)")
            line(f"{name}: p50 / p99 under load", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))}")
            line(f"{name}: proxy CPU per request", f"{cpu / done * 1e6:,.0f} us")
            if name == "LiteLLM + aiaudit":
                expected = before + args.requests + 100 + done
        (rps_a, cpu_a), (rps_n, cpu_n), (rps_b, cpu_b) = (figures[n] for n in callbacks)
        line("aiaudit's callback against none: throughput / CPU per request", f"{rps_b / rps_a:.2f}x / {cpu_b / cpu_a:.2f}x")
        line("aiaudit's callback against a no-op one: throughput / CPU per request",
             f"{rps_b / rps_n:.2f}x / {cpu_b / cpu_n:.2f}x")
        line("aiaudit's own CPU per request (against the no-op callback)", f"{(cpu_b - cpu_n) * 1e6:,.0f} us")
        deadline = time.monotonic() + 60
        while (events := sum(end_offsets(s, s.kafka.requests_topic, 4).values())) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        line("events on the requests topic / requests the aiaudit proxy answered",
             f"{events - before:,} / {expected - before:,}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        kafka.down()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
