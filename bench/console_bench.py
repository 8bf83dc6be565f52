"""The console's speed on this machine (issue 25 item 5; prints figures, asserts nothing).

    python bench/console_bench.py [--records 1000000] [--chains 4] [--requests 100]

Target: the overview, a records search filtered by actor and a record's page each answer in at
most 300 ms at the 95th percentile on a store of 1M records.

The store is built as bench/verify_bench.py builds it (real records, signed, checkpoints every
5,000), in an embedded chDB served by the sink's store API (pipeline/store/api.py), as the console
reads it in production; a broker of its own (127.0.0.1:19692) takes the access record of every
page view. The console runs under uvicorn in this process; a client signed in as an admin asks
each page `--requests` times (random actors, random records). Reference, in the same run: the same
reads called directly on the store (pipeline/console/reads.py on the embedded client: no HTTP, no
store API, no access record, no template), so the ratio is what the console adds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from aiaudit.infra.kafka.broker import LocalKafka  # noqa: E402
from aiaudit.infra.topics import ensure_topics  # noqa: E402
from aiaudit.pipeline import store  # noqa: E402
from aiaudit.pipeline.console import reads  # noqa: E402
from aiaudit.pipeline.console.accounts import Accounts  # noqa: E402
from aiaudit.pipeline.console.app import Console  # noqa: E402
from aiaudit.pipeline.contract.analyst_keys import (  # noqa: E402
    ANALYSTS_DIR,
    key_set_file,
    load_status_signer,
    new_analyst_key,
)
from aiaudit.pipeline.keys import (  # noqa: E402
    OPERATOR_PUB,
    checkpoint_key_file,
    ensure_operator_key,
    load_operator_key,
    operator_key_file,
    read_checkpoint_public_key,
    read_jwks,
    read_operator_public_key,
)
from aiaudit.pipeline.store.access_log import AccessLog  # noqa: E402
from aiaudit.pipeline.store.api import StoreServer  # noqa: E402
from aiaudit.pipeline.store.filters import Filters  # noqa: E402
from aiaudit.pipeline.verify.trust import parse_trust, trust_document  # noqa: E402
from bench.verify_bench import line, make_settings, store_records  # noqa: E402

BASE = Path(".aiaudit/console-bench").resolve()
PORT = 19692
PASSWORD = "bench-password-2026"


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms"


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    server = kafka = None
    try:
        settings = make_settings(BASE / "keys", BASE / "chdb", BASE, PORT)
        key, _, _ = new_analyst_key(settings.signing.keys_dir / ANALYSTS_DIR, "bench-console", key_set_file(settings),
                                    console=True)
        ensure_operator_key(operator_key_file(settings.signing.keys_dir, None))
        kafka = LocalKafka(settings)
        kafka.up()
        ensure_topics(settings)
        print(f"console bench: {args.records:,} records in {args.chains} chains, {os.cpu_count()} cores, "
              f"{args.requests} requests per page")
        origins = store_records(settings, args.records, args.chains)
        sg = settings.signing
        trust = parse_trust(json.dumps(trust_document(
            read_jwks(sg.keys_dir), [read_checkpoint_public_key(checkpoint_key_file(sg.keys_dir, None))],
            operator_keys=[read_operator_public_key(operator_key_file(sg.keys_dir, None).with_name(OPERATOR_PUB))])),
            "bench trust")
        signer = load_status_signer(key)
        direct = store.connect(settings, apply_ddl=False)
        db = store.database(settings)
        actors = [a for (a,) in direct.query(f"SELECT DISTINCT actor_id FROM {db}.evidence LIMIT 200").result_rows]
        per_chain = args.records // args.chains
        rng = random.Random(7)
        picks = [(rng.choice(origins), rng.randrange(per_chain - 5_000)) for _ in range(args.requests)]
        who = [rng.choice(actors) for _ in range(args.requests)]

        # The reference: the same reads on the embedded client, nothing of the console around them.
        lag = {"chain": 0, "evidence": 0, "sink": 0, "error": None}
        ref = {"overview": timed(lambda i: reads.overview(direct, settings, lag), args.requests),
               "search": timed(lambda i: reads.records(direct, settings, Filters(actor=who[i]), None), args.requests),
               "record": timed(lambda i: reads.record(direct, settings, *picks[i], trust, load_operator_key(
                   operator_key_file(sg.keys_dir, None))), args.requests)}

        api = StoreServer(direct, BASE, access=AccessLog(settings, signer=signer))  # the sink's store API
        api.start()
        accounts = Accounts(BASE / "accounts.json")
        accounts.add("bench", "admin", PASSWORD)
        settings = settings.updated(console={"port": PORT + 10})
        console = Console(settings, trust=trust, signer=signer,
                          operator=load_operator_key(operator_key_file(sg.keys_dir, None)), accounts=accounts)
        server = uvicorn.Server(uvicorn.Config(console.app(), host="127.0.0.1", port=PORT + 10, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{PORT + 10}"
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(100):
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)
            http.post("/login", data={"csrf": token, "name": "bench", "password": PASSWORD})
            http.get("/")  # the lag cache filled once, as on a console that has been up

            def page(path: str, params: dict | None = None) -> None:
                r = http.get(path, params=params)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: {r.status_code} {r.text[:500]}")

            got = {"overview": timed(lambda i: page("/"), args.requests),
                   "search": timed(lambda i: page("/records", {"actor": who[i]}), args.requests),
                   "record": timed(lambda i: page("/record", {"origin": picks[i][0], "seq": str(picks[i][1])}),
                                   args.requests)}
        for name, label in (("overview", "the overview"), ("search", "records search by actor"),
                            ("record", "a record's page (checks and proof bundle)")):
            ratio = statistics.median(got[name]) / statistics.median(ref[name])
            line(f"{label}: direct reads (reference)", quantiles(ref[name]))
            line(f"{label}: the console, over HTTP", f"{quantiles(got[name])} = {ratio:.1f}x the reference median")
        api.close()
    finally:
        if server is not None:
            server.should_exit = True
        if kafka is not None:
            kafka.down()
        shutil.rmtree(BASE, ignore_errors=True)


if __name__ == "__main__":
    main()
