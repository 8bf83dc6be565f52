"""Every figure of an evidence report, from its export alone (pure).

`aiaudit report` writes an export and then computes the report's figures from that file with this
function; `aiaudit verify --report` reads the same file and computes them again: a figure the
report shows that its records do not give is caught, whoever changed it. Nothing here reads the
store, the clock or the settings.

A report's export holds, for each chain with records in the period, every record from the one just
before the period's first to the one just after its last (pipeline/report/pack.py): the records
counted are those whose time lies in the period; the others show that nothing was removed at
either edge (`completeness`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from statistics import median
from typing import Any

import orjson

from aiaudit.pipeline.chain.formats import kind_of, parse_stored
from aiaudit.pipeline.chain.note import NoteError, cosignature_time
from aiaudit.pipeline.chain.record_v2 import Message
from aiaudit.pipeline.contract import parse_ts
from aiaudit.pipeline.export.format import ExportFile
from aiaudit.pipeline.store.policies import changed_entries

FIGURES_VERSION = 2
# Figures an older aiaudit wrote are still checked, as that version computed them. 2 added quiet and
# stale chains, each chain's newest signed time and whether it is closed, what each route kept, and
# the range proofs of whole stretches.
FIGURES_VERSIONS = (1, 2)
TOP_IDENTITIES = 10
NOT_DEAD_LETTER = "(none)"


SHORT_PERIOD = timedelta(days=3)  # plotted by the hour; longer ones by the day


def _bucket_of(since: datetime, until: datetime) -> tuple[str, str]:
    """The plots' time step for a period, and its strftime form."""
    return ("hour", "%Y-%m-%d %H:00") if until - since <= SHORT_PERIOD else ("day", "%Y-%m-%d")


def _bump(table: dict[str, dict[str, int]], row: str, col: str) -> None:
    table.setdefault(row, {})
    table[row][col] = table[row].get(col, 0) + 1


def _sorted(counter: Counter[str] | dict[str, int]) -> dict[str, int]:
    """Largest first, then by name: the same figures give the same JSON."""
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _message(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """A v2 record's message as JSON (None when it is not a JSON object) and its text headers."""
    try:
        msg = Message.from_event(obj["event"])
    except ValueError:
        return None, {}
    headers = {name: value.decode("utf-8", "replace") for name, value in msg.headers}
    try:
        value = orjson.loads(msg.value)
    except orjson.JSONDecodeError:
        return None, headers
    return (value if isinstance(value, dict) else None), headers


def compute(file: ExportFile, since: datetime, until: datetime, *, scoped: bool,
            version: int = FIGURES_VERSION) -> dict[str, Any]:
    """The report's figures. `scoped`: the export holds one actor's (route's, vendor's, policy
    version's) records, not whole stretches of chains, so completeness is not shown from it.
    `version`: one of FIGURES_VERSIONS (an older report is checked as it was computed)."""
    if version not in FIGURES_VERSIONS:
        raise ValueError(f"figures version {version} is not one of {FIGURES_VERSIONS}")
    bucket, step = _bucket_of(since, until)
    requests: dict[str, Any] = {"total": 0}
    by_decision: Counter[str] = Counter()
    by_level: Counter[str] = Counter()
    by_actor_type: Counter[str] = Counter()
    by_vendor_model: Counter[str] = Counter()
    by_route: Counter[str] = Counter()
    by_policy: Counter[str] = Counter()
    by_emitter: Counter[str] = Counter()
    by_retention: Counter[str] = Counter()
    route_content: dict[str, dict[str, int]] = {}
    over_time: dict[str, dict[str, int]] = {}
    level_by_vendor: dict[str, dict[str, int]] = {}
    identities: dict[str, dict[str, Any]] = {}
    kinds: Counter[str] = Counter()
    keys: dict[str, dict[str, Any]] = {}
    findings_over_time: dict[str, dict[str, int]] = {}
    findings_by_severity: Counter[str] = Counter()
    finding_time: dict[str, datetime] = {}
    first_ack: dict[str, datetime] = {}
    status_changes: Counter[str] = Counter()
    incidents: set[str] = set()
    deliveries: Counter[str] = Counter()
    dead_letters: Counter[str] = Counter()
    policies: list[dict[str, Any]] = []
    access_by: Counter[str] = Counter()
    access_by_op: Counter[str] = Counter()
    access_refused = 0
    erasures: Counter[str] = Counter()
    rules: list[dict[str, Any]] = []
    key_sets: list[dict[str, Any]] = []
    unreadable = 0
    seqs: dict[str, dict[int, datetime]] = defaultdict(dict)  # every record of the file, by chain
    emitted: dict[str, list[set[int]]] = {}  # emitter -> [its numbers outside the period, inside]
    growth: dict[str, Counter[str]] = defaultdict(Counter)  # records per step (hour or day) per kind

    for rec in file.records:
        try:
            obj = parse_stored(rec.payload)
            ts = parse_ts(obj["ts"])
        except (ValueError, KeyError, TypeError):
            unreadable += 1  # the verifier reports it (malformed_payload); nothing here counts it
            continue
        seqs[rec.origin][rec.seq] = ts
        kind = kind_of(obj)
        if kind == "request":  # every request in the file, in the period or not, holds its emitter's number
            numbered = emitted.setdefault(str(obj["event"]["emitter_id"]), [set(), set()])
            numbered[since <= ts < until].add(int(obj["event"]["emitter_seq"]))
        if not since <= ts < until:
            continue
        kinds[kind] += 1
        growth[ts.astimezone(timezone.utc).strftime(step)][kind] += 1
        key = keys.setdefault(str(obj["kid"]), {"records": 0, "first": obj["ts"], "last": obj["ts"]})
        key["records"] += 1
        key["first"], key["last"] = min(key["first"], obj["ts"]), max(key["last"], obj["ts"])
        if kind == "request":
            ev = obj["event"]
            requests["total"] += 1
            decision, level = str(ev["decision"]), str(ev["prompt_classification"]["level"])
            vendor, model = str(ev["gen_ai_provider_name"]), str(ev["gen_ai_request_model"])
            actor = ev["actor"]
            by_decision[decision] += 1
            by_level[level] += 1
            by_actor_type[str(actor["type"])] += 1
            by_vendor_model[f"{vendor} / {model}"] += 1
            by_route[str(ev["route"])] += 1
            by_policy[str(ev["policy_version"])] += 1
            by_emitter[str(ev["emitter_id"])] += 1
            by_retention[str(ev["retention_scope"])] += 1
            _bump(route_content, str(ev["route"]), "with commitments" if ev.get("prompt_commitment") else "without")
            _bump(over_time, ts.astimezone(timezone.utc).strftime(step), decision)
            _bump(level_by_vendor, vendor, level)
            who = identities.setdefault(str(actor["id"]), {"type": str(actor["type"]), "requests": 0, "denied": 0,
                                                           "sensitive": 0})
            who["requests"] += 1
            who["denied"] += decision == "deny"
            who["sensitive"] += level in ("confidential", "restricted")
            continue
        message, headers = _message(obj)
        if kind == "dead_letter":
            dead_letters[headers.get("aiaudit.reason", "unknown")] += 1
        if message is None:
            continue
        if kind == "finding":
            severity = str(message.get("severity", "unknown")).lower()
            findings_by_severity[severity] += 1
            _bump(findings_over_time, ts.astimezone(timezone.utc).strftime(step), severity)
            uid = (message.get("finding_info") or {}).get("uid")
            if isinstance(uid, str):
                finding_time[uid] = ts
        elif kind == "incident":
            uid = (message.get("finding_info") or {}).get("uid")
            if isinstance(uid, str):
                incidents.add(uid)
        elif kind == "status_change":
            status = str(message.get("status", "unknown"))
            status_changes[status] += 1
            uid = message.get("finding_uid")
            if isinstance(uid, str) and status == "acknowledged":
                try:
                    at = parse_ts(str(message.get("at")))
                except ValueError:
                    at = ts
                first_ack[uid] = min(first_ack.get(uid, at), at)
        elif kind == "delivery":
            deliveries[str(message.get("outcome", "unknown"))] += 1
        elif kind == "policy":
            policies.append({"policy_id": str(message.get("policy_id")), "version": str(message.get("policy_version")),
                             "loaded_at": str(message.get("loaded_at")), "gateway": str(message.get("gateway_id")),
                             "canonical_json": str(message.get("canonical_json", ""))})
        elif kind == "access":
            access_by[str(message.get("by"))] += 1
            access_by_op[str(message.get("op"))] += 1
            access_refused += message.get("outcome") == "refused"
        elif kind == "erasure":
            erasures[str(message.get("action", "unknown"))] += 1
        elif kind == "rules":
            rules.append({"version": str(message.get("version")), "sha256": str(message.get("sha256")),
                          "first_scored_at": str(message.get("first_scored_at")), "off": message.get("off") or []})
        elif kind == "key_set":
            key_sets.append({"key_set": str(message.get("key_set")), "sha256": str(message.get("sha256")),
                             "keys": len(message.get("kids") or []), "first_used_at": str(message.get("first_used_at"))})

    people = sorted((i for i in identities.items()), key=lambda kv: (-kv[1]["requests"], kv[0]))
    requests.update({
        "by_decision": _sorted(by_decision), "by_classification": _sorted(by_level),
        "by_actor_type": _sorted(by_actor_type), "by_vendor_model": _sorted(by_vendor_model),
        "by_route": _sorted(by_route), "by_policy_version": _sorted(by_policy), "by_emitter": _sorted(by_emitter),
        "by_retention_scope": _sorted(by_retention),
        "commitments_by_route": {k: dict(sorted(v.items())) for k, v in sorted(route_content.items())},
        "over_time": {d: dict(sorted(v.items())) for d, v in sorted(over_time.items())},
        "classification_by_vendor": {v: dict(sorted(c.items())) for v, c in sorted(level_by_vendor.items())},
        "people": sum(1 for _, i in identities.items() if i["type"] == "workforce"),
        "agents": sum(1 for _, i in identities.items() if i["type"] != "workforce"),
        "top_identities": [{"id": k, **v} for k, v in people[:TOP_IDENTITIES]],
    })
    signed = _signed_times(file)  # each chain's newest checkpoint and signed time, read once
    acked = sorted((first_ack[u] - finding_time[u]).total_seconds() for u in finding_time if u in first_ack)
    monitoring = {
        "findings": sum(findings_by_severity.values()), "by_severity": _sorted(findings_by_severity),
        "over_time": {d: dict(sorted(v.items())) for d, v in sorted(findings_over_time.items())},
        "incident_updates": kinds.get("incident", 0), "incidents": len(incidents),
        "status_changes": _sorted(status_changes), "deliveries": _sorted(deliveries),
        "acknowledged": len(acked),
        "time_to_acknowledge_s": {"median": round(median(acked), 3) if acked else None,
                                  "max": round(acked[-1], 3) if acked else None},
    }
    out: dict[str, Any] = {
        "figures_version": version,
        "plotted_by": bucket,
        "requests": requests,
        "integrity": _integrity(file, signed, kinds, keys, growth, unreadable),
        "completeness": {**_completeness(signed, seqs, since, until, scoped, dead_letters, version),
                         "emitters": [] if scoped else _emitters(emitted)},
        "policy": {"versions_in_force": _sorted(by_policy), "changes": _policy_changes(policies),
                   "content_by_route": _content_by_route(policies)},
        "monitoring": monitoring,
        "access": {"reads": sum(access_by.values()), "refused": access_refused, "by_principal": _sorted(access_by),
                   "by_operation": _sorted(access_by_op)},
        "erasure": {"records": sum(erasures.values()), "by_action": _sorted(erasures)},
        "configuration": {"rules": sorted(rules, key=lambda r: (r["first_scored_at"], r["sha256"])),
                          "key_sets": sorted(key_sets, key=lambda k: (k["first_used_at"], k["key_set"], k["sha256"]))},
    }
    if version == 1:
        del out["requests"]["commitments_by_route"], out["policy"]["content_by_route"]
        del out["integrity"]["range_proofs"], out["integrity"]["records_in_range_proofs"]
    return out


def _signed_times(file: ExportFile) -> dict[str, dict[str, Any]]:
    """Per chain: its newest checkpoint size, the log's newest signed time (Unix seconds) and the
    witnesses (by name) that cosigned, from the checkpoint lines' cosignatures."""
    out: dict[str, dict[str, Any]] = {}
    for cp in file.checkpoints:
        entry = out.setdefault(cp.origin, {"size": 0, "signed_at": None, "checkpoints": 0, "witnesses": set(),
                                           "closed": False})
        entry["checkpoints"] += 1
        entry["size"] = max(entry["size"], cp.size)
        entry["closed"] = entry["closed"] or cp.final is not None
        for line in cp.cosignatures:
            try:
                name, when = cosignature_time(line)
            except NoteError:
                continue
            if name == cp.origin:
                if cp.size == entry["size"]:
                    entry["signed_at"] = max(entry["signed_at"] or 0, when)
            else:
                entry["witnesses"].add(name)
    return out


def _integrity(file: ExportFile, signed: dict[str, dict[str, Any]], kinds: Counter[str], keys: dict[str, dict[str, Any]],
               growth: dict[str, Counter[str]], unreadable: int) -> dict[str, Any]:
    witnesses = sorted({w for s in signed.values() for w in s["witnesses"]})
    return {
        "chains": len({r.origin for r in file.records}), "records_in_file": len(file.records),
        "records_in_period": sum(kinds.values()), "unreadable": unreadable,
        "by_kind": _sorted(kinds), "checkpoints": sum(s["checkpoints"] for s in signed.values()),
        "chains_witnessed": sum(1 for s in signed.values() if s["witnesses"]), "witnesses": witnesses,
        "inclusion_proofs": len(file.proofs),
        "range_proofs": len(file.ranges),
        "records_in_range_proofs": sum(r.last - r.first + 1 for r in file.ranges.values()),
        "keys": {kid: keys[kid] for kid in sorted(keys)},
        "growth": {d: dict(sorted(c.items())) for d, c in sorted(growth.items())},
        "signed_times": {o: {"size": s["size"], "signed_at": _iso(s["signed_at"])} for o, s in sorted(signed.items())},
    }


def _iso(seconds: int | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _completeness(signed: dict[str, dict[str, Any]], seqs: dict[str, dict[int, datetime]], since: datetime, until: datetime,
                  scoped: bool, dead_letters: Counter[str], version: int) -> dict[str, Any]:
    """Per chain: its stretch in the file is contiguous; it starts at a record dated before the
    period (or at the chain's start) and runs on to a record dated after the period, or to the
    chain's last record under a checkpoint signed after the period ended. Records between dated
    outside the period (an emitter's clock) are in the stretch, not counted."""
    dl = {"dead_letters_by_reason": _sorted(dead_letters)}
    if scoped:
        return {"checked": False, "chains": [], "problems": [], **dl,
                "why": "a scoped report holds the scope's records only: they are genuine (signed, proven), but "
                       "whether the store returned every one rests on the store's answer"}
    chains, problems = [], []
    for origin in sorted(seqs):
        by_seq = seqs[origin]
        inside = [s for s, ts in by_seq.items() if since <= ts < until]
        if not inside and version == 1:
            continue  # version 1 did not list quiet chains
        present = set(by_seq)
        first, last = min(present), max(present)
        # A quiet chain (no record in the period) is judged from its last record before the period.
        lo, hi = (min(inside), max(inside)) if inside else (last, last)
        gaps = [s for s in range(first, last + 1) if s not in present]
        before = "the chain's first record" if first == 0 else (
            "record before the period" if by_seq[first] < since and (first < lo or not inside) else None)
        cp = signed.get(origin, {})
        cp_time = cp.get("signed_at")
        if cp.get("closed") and version > 1:
            after = "the chain's signed final checkpoint (closed)" if cp.get("size") == last + 1 else None
        elif any(s > hi and by_seq[s] >= until for s in present):
            after = "record after the period"
        elif cp.get("size") == last + 1 and cp_time is not None and cp_time >= until.timestamp():
            after = "checkpoint signed after the period, at the chain's last record"
        else:
            after = None
        entry = {"origin": origin, "first_seq": min(inside) if inside else None,
                 "last_seq": max(inside) if inside else None, "records": len(inside), "before": before,
                 "after": after, "gaps": len(gaps)}
        if version > 1:
            entry.update({"newest_signed_at": _iso(cp_time), "closed": bool(cp.get("closed"))})
        chains.append(entry)
        where = f"seq {hi} (the period's last)" if inside else f"seq {hi} (its last before the period: none in it)"
        if gaps:
            problems.append(f"{origin}: {len(gaps)} record(s) missing between seq {first} and {last} (first {gaps[0]})")
        if before is None:
            problems.append(f"{origin}: no record dated before the period is shown before seq {lo} (the period's "
                            "first): records at the start may be missing")
        if after is None and version > 1 and cp_time is not None and cp_time < until.timestamp() and not cp.get("closed"):
            problems.append(f"{origin}: stale: after {where} its newest signed time is {_iso(cp_time)}, before the "
                            "period's end: the chain stopped (its worker down, no heartbeat), or its newest records "
                            "and checkpoints were removed")
        elif after is None:
            problems.append(f"{origin}: after {where}, neither a record dated after the period nor the chain's end "
                            "under a checkpoint signed after it: records at the end may be missing")
    return {"checked": True, "chains": chains, "problems": problems, **dl}


def _policy_changes(policies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each policy version first loaded in the period, oldest first, with what changed from the
    version of the same policy loaded before it (top-level sections and their entries)."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for p in policies:
        k = (p["policy_id"], p["version"])
        if k not in first or p["loaded_at"] < first[k]["loaded_at"]:
            first[k] = p
    out: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    for p in sorted(first.values(), key=lambda p: (p["loaded_at"], p["version"])):
        try:
            doc = orjson.loads(p["canonical_json"]) if p["canonical_json"] else {}
        except orjson.JSONDecodeError:
            doc = {}
        before = previous.get(p["policy_id"])
        out.append({"policy_id": p["policy_id"], "version": p["version"], "loaded_at": p["loaded_at"],
                    "gateway": p["gateway"], "changed": changed_entries(before, doc) if before is not None else ["first version"]})
        previous[p["policy_id"]] = doc
    return out


def _content_by_route(policies: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """What each route keeps of a request's text (none | commitments | full) in the policy bundles
    the export holds: every setting a route had among them (a change shows as two)."""
    out: dict[str, set[str]] = {}
    for p in policies:
        try:
            doc = orjson.loads(p["canonical_json"]) if p["canonical_json"] else {}
        except orjson.JSONDecodeError:
            continue
        routes = doc.get("routes") if isinstance(doc, dict) else None
        for name, route in (routes or {}).items() if isinstance(routes, dict) else ():
            if isinstance(route, dict):
                out.setdefault(str(name), set()).add(str(route.get("content", "commitments")))
    return {name: sorted(modes) for name, modes in sorted(out.items())}


def _emitters(emitted: dict[str, list[set[int]]]) -> list[dict[str, Any]]:
    """Each emitter's numbering over the period: its first and last number among the period's
    records, and how many numbers between are on no record of the export (an event dead-lettered,
    lost before the chain, or dated outside the period and chained outside its stretch). Shown, not
    judged: a dead letter keeps no readable number."""
    out = []
    for emitter in sorted(emitted):
        outside, inside = emitted[emitter]
        if not inside:
            continue
        first, last = min(inside), max(inside)
        present = inside | {n for n in outside if first <= n <= last}
        out.append({"emitter": emitter, "events": len(inside), "first": first, "last": last,
                    "unaccounted": last - first + 1 - len(present)})
    return out
