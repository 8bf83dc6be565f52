"""The evidence report's aggregates at scale (prints figures; asserts nothing).

    python bench/report_bench.py [--records 1000000] [--chains 4]

A period of N request records (built with the real record code and signed, in chains of one
emitter's synthetic traffic) is held as the export reader holds it, then:

1. Reference: parsing every record's payload (orjson), the least any figure needs, measured in
   this run.
2. The report's figures (pipeline/report/figures.py): the time, and the ratio to the reference.
3. The page (pipeline/report/html.py): the time to render it from the figures, and its size
   (the target: the aggregates of a 1M-record period in at most 60 s, the page under 5 MB; the
   rows go in the export, which is written and timed on its own, with `aiaudit report` end to
   end and `verify --report`, by bench/verify_bench.py's step 5).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from aiaudit.pipeline.chain.record import ChainHead, ChainId, Source, build_record  # noqa: E402
from aiaudit.pipeline.contract import parse_ts, to_json_event  # noqa: E402
from aiaudit.pipeline.emit.synthetic import SyntheticEvents  # noqa: E402
from aiaudit.pipeline.export.format import ExportFile  # noqa: E402
from aiaudit.pipeline.keys import Ed25519Signer  # noqa: E402
from aiaudit.pipeline.report import figures, html  # noqa: E402
from aiaudit.pipeline.report.pack import controls  # noqa: E402
from tests.unit.helpers import T0  # noqa: E402


def build(n: int, chains: int) -> ExportFile:
    signer = Ed25519Signer.generate()
    gen = SyntheticEvents(7, T0, "bench-gateway", step=timedelta(milliseconds=50))
    heads = [ChainHead.genesis(ChainId(f"bench/report/ai.requests/p{p}/g1")) for p in range(chains)]
    out = ExportFile()
    for i in range(n):
        ev = gen.next_event()
        ev["emitter_seq"] = i
        event = to_json_event(ev)
        p = i % chains
        rec = build_record(heads[p], signer, event["occurred_at"], Source("ai.requests", p, i // chains), event)
        heads[p] = rec.next_head(i // chains)
        out.records.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--chains", type=int, default=4)
    args = ap.parse_args()
    t = time.perf_counter()
    file = build(args.records, args.chains)
    print(f"built {args.records:,} signed records on {args.chains} chains in {time.perf_counter() - t:.1f}s")
    first = orjson.loads(file.records[0].payload)["ts"]
    last = orjson.loads(file.records[-1].payload)["ts"]
    since, until = parse_ts(first), parse_ts(last) + timedelta(seconds=1)

    t = time.perf_counter()
    for rec in file.records:
        orjson.loads(rec.payload)
    reference = time.perf_counter() - t
    print(f"reference: parse every payload            {reference:7.2f}s  ({args.records / reference:,.0f} records/s)")

    t = time.perf_counter()
    result = figures.compute(file, since, until, scoped=False)
    took = time.perf_counter() - t
    assert result["requests"]["total"] == args.records
    print(f"figures (every section)                    {took:7.2f}s  ({took / reference:.1f}x the reference; "
          f"{took * 1_000_000 / args.records:.1f}s per 1M records)")

    t = time.perf_counter()
    page = html.render(result, {"since": first, "until": last, "scope": {}, "generated_at": last, "version": "bench",
                                "export": "export.jsonl", "operator_key": "-"}, controls())
    rendered = time.perf_counter() - t
    print(f"page rendered from the figures             {rendered:7.2f}s  ({len(page.encode()) / 1_048_576:.2f} MB)")


if __name__ == "__main__":
    main()
