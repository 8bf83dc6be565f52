"""Signed checkpoints on the real pipeline: written with the records, restored across restarts,
and what the red team's deletions and rewrites look like to `verify` on the real store."""

from __future__ import annotations

import base64
import time

import pytest

from aiaudit.pipeline import store
from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.checkpoint import TreeState
from aiaudit.pipeline.chain.note import SIG_ED25519, Verifier, open_checkpoint
from aiaudit.pipeline.chain.record import ChainHead, ChainId, Record, Source, build_record, parse_payload
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.keys import active_key_file, checkpoint_key_file, load_signer, read_checkpoint_public_key
from aiaudit.pipeline.query import proofs
from aiaudit.pipeline.store import evidence
from tests.integration.support import ChainWorkers, emit_synthetic, read_topic, sink_until_drained, verify_store

pytestmark = pytest.mark.integration


def _chain_to_signed_tail(settings, client, tmp_path, n: int) -> list[Record]:
    """Emit n events through a chain worker that is restarted half way, wait until every chain's
    newest size is signed, and sink everything. Returns the chained records."""
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_synthetic(settings, n // 2, emitter_id="edge-cp-a", seed=3)
        time.sleep(1)
        workers.stop_all()  # the next worker continues every chain's tree from its stored state
        workers.start("w2")
        emit_synthetic(settings, n - n // 2, emitter_id="edge-cp-b", seed=4)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = [Record.from_wire(m.value()) for m in read_topic(settings, settings.kafka.chain_topic)]
            signed, notes = {}, []
            for m in read_topic(settings, settings.kafka.checkpoints_topic):
                state = TreeState.from_wire(m.value())
                if state.note is not None:
                    signed[state.origin] = max(signed.get(state.origin, 0), state.size)
                    notes.append((state.origin, state.size))
            sizes = {}
            for r in records:
                sizes[r.origin] = max(sizes.get(r.origin, 0), r.seq + 1)
            if len(records) == n and signed == sizes:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"tails not signed: {signed} vs {sizes}\n{workers.logs()}")
    # One signed checkpoint per (origin, size), across the restart too.
    assert len(notes) == len(set(notes)), sorted(n for n in notes if notes.count(n) > 1)
    sink_until_drained(settings, client)
    return records


def _delete(client, settings, where: str, params: dict) -> None:
    db = store.database(settings)
    client.command(f"DELETE FROM {db}.evidence WHERE {where}", parameters=params)


def test_checkpoints_cover_every_record_and_catch_deletions_at_the_end(settings, client, tmp_path):
    records = _chain_to_signed_tail(settings, client, tmp_path, 600)
    report = verify_store(settings, client)
    assert report.ok, report.text()[-2000:]
    assert report.checkpoints >= len({r.origin for r in records}) and report.warnings == []

    # The red team deletes the newest two records of every chain: the emitters' numbering has no
    # gap to show it, but every chain's newest signed checkpoint covers them.
    tails = {}
    for r in records:
        tails[r.origin] = max(tails.get(r.origin, -1), r.seq)
    for origin, last in tails.items():
        _delete(client, settings, "origin = {o:String} AND seq >= {s:UInt64}", {"o": origin, "s": last - 1})
    report = verify_store(settings, client)
    got = sorted((f.origin, f.seq, f.reason) for f in report.failures if f.reason == "truncated")
    assert got == sorted((o, last - 1, "truncated") for o, last in tails.items()), report.text()[-2000:]

    # ... and a whole chain: it is still named, from its checkpoints.
    gone = sorted(tails)[0]
    _delete(client, settings, "origin = {o:String}", {"o": gone})
    report = verify_store(settings, client)
    assert (gone, 0, "truncated") in [(f.origin, f.seq, f.reason) for f in report.failures]
    assert len([c for c in report.chains if c.kind != "key_set"]) == len(tails)  # the gone chain named, kind unknown


def test_history_rewritten_with_the_real_record_key_breaks_the_signed_root(settings, client, tmp_path):
    records = _chain_to_signed_tail(settings, client, tmp_path, 300)
    origin = records[0].origin
    chain = sorted((r for r in records if r.origin == origin), key=lambda r: r.seq)
    signer = load_signer(active_key_file(settings.signing.keys_dir, None))  # the insider holds the real key
    head, forged = ChainHead.genesis(ChainId(origin)), []
    for i, rec in enumerate(chain):
        obj = parse_payload(rec.payload)
        event = obj["event"]
        if i == 1:
            event = {**event, "decision": "deny" if event["decision"] != "deny" else "allow"}
        src = Source(obj["src"]["topic"], obj["src"]["partition"], obj["src"]["offset"])
        new = build_record(head, signer, obj["ts"], src, event)
        forged.append(new)
        head = new.next_head(src.offset)
    _delete(client, settings, "origin = {o:String}", {"o": origin})
    store.insert(client, f"{store.database(settings)}.evidence", [evidence.row(r) for r in forged], evidence.COLUMNS)
    report = verify_store(settings, client)
    mine = [(f.seq, f.reason) for f in report.failures if f.origin == origin]
    # The signed root catches the rewrite; the emitter's signature catches the altered event itself;
    # the stored tree states (written with the genuine records) no longer match from size 2 on.
    assert {reason for _, reason in mine} == {"root_mismatch", "unauthenticated_emitter", "tree_state_mismatch"}, \
        report.text()[-2000:]
    assert min(seq for seq, reason in mine if reason == "tree_state_mismatch") >= chain[1].seq  # none before it
    assert [seq for seq, reason in mine if reason == "unauthenticated_emitter"] == [chain[1].seq]
    assert all(f.origin == origin for f in report.failures)


def test_proofs_come_from_stored_hashes_and_verify_against_the_signed_checkpoints(settings, client, tmp_path):
    records = _chain_to_signed_tail(settings, client, tmp_path, 1300)  # ~325 a chain: level-8 tiles exist
    by_origin: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.seq):
        by_origin.setdefault(r.origin, []).append(r)
    checkpoint_pub = read_checkpoint_public_key(checkpoint_key_file(settings.signing.keys_dir, None))
    for origin, chain in by_origin.items():
        leaves = [bytes.fromhex(r.leaf_hash) for r in chain]
        size = len(chain)
        for seq in sorted({0, 1, min(255, size - 1), min(256, size - 1), size - 1}):
            p = proofs.inclusion(client, settings, origin, seq)
            assert p["size"] == size  # the newest signed checkpoint
            cp = open_checkpoint(p["checkpoint"], Verifier(origin, SIG_ED25519, checkpoint_pub))
            # An outside verifier's view: the leaf is the record's, the root the signed one.
            merkle.verify_inclusion(seq, size, leaves[seq], [base64.b64decode(h) for h in p["proof"]], cp.root)
            assert base64.b64decode(p["root"]) == cp.root == merkle.root_of(leaves)
        for old in sorted({1, min(100, size), min(257, size)}):
            c = proofs.consistency(client, settings, origin, old)
            merkle.verify_consistency(old, size, merkle.root_of(leaves[:old]), merkle.root_of(leaves),
                                      [base64.b64decode(h) for h in c["proof"]])
    with pytest.raises(ConfigError, match="is not in"):
        proofs.inclusion(client, settings, origin, size + 5)


def test_heartbeats_sign_quiet_chains_and_the_tail_rule_catches_removed_tails_and_a_stopped_logger(
        settings, client, tmp_path):
    """Every chain's last size gets a fresh signed time every heartbeat interval while nothing
    happens. The red team removes one chain's newest records together with every checkpoint and
    heartbeat that covers them (no truncation check can see that): `verify --max-age` names the
    chain as stale. Once the logger stops, every chain goes stale."""
    import json
    from datetime import datetime, timedelta, timezone

    from aiaudit.pipeline.chain.note import cosignature_time
    from tests.integration.test_cli import aiaudit

    settings = settings.updated(chain={"heartbeat_interval_s": 1.0})
    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("w1")
        emit_synthetic(settings, 100, emitter_id="edge-hb-1", seed=8)
        time.sleep(4)  # signed within the checkpoint interval, then heartbeats
        emit_synthetic(settings, 100, emitter_id="edge-hb-2", seed=9)
        time.sleep(20)
    end = (datetime.now(timezone.utc) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")  # just after the stop
    states = [TreeState.from_wire(m.value()) for m in read_topic(settings, settings.kafka.checkpoints_topic)]
    sizes: dict[str, int] = {}
    for s in states:
        sizes[s.origin] = max(sizes.get(s.origin, 0), s.size)
    assert len(sizes) == settings.kafka.partitions
    for origin, size in sizes.items():
        beats = [cosignature_time(s.timestamp)[1] for s in states
                 if s.origin == origin and s.size == size and s.note is None and s.timestamp]
        assert len(beats) >= 5 and beats == sorted(beats), (origin, beats)  # fresh signed times, no new records
        assert all(cosignature_time(s.timestamp)[0] == origin for s in states if s.origin == origin and s.timestamp)
    sink_until_drained(settings, client)

    # The tail of one chain goes: its records from the first burst's signed size on, and every
    # tree state (checkpoints, heartbeats) above that size.
    victim = sorted(sizes)[0]
    first = min(s.size for s in states if s.origin == victim and s.note is not None)
    assert first < sizes[victim]
    db = store.database(settings)
    client.command(f"DELETE FROM {db}.evidence WHERE origin = {{o:String}} AND seq >= {{s:UInt64}}",
                   parameters={"o": victim, "s": first})
    client.command(f"DELETE FROM {db}.checkpoints WHERE origin = {{o:String}} AND size > {{s:UInt64}}",
                   parameters={"o": victim, "s": first})
    client.close()  # the CLI's turn at the embedded store
    # As of `end`, the untouched chains had signed times within seconds; the victim's newest is 20 s older.
    # (Verified alone, the chain gets no help from the emitters' numbering, which spans chains.)
    caught = aiaudit(settings, "verify", "--origin", victim, "--until", end, "--as-of", end, "--max-age", "12s", "--json")
    report = json.loads(caught.stdout)
    assert caught.returncode == 1 and [(f["origin"], f["reason"]) for f in report["failures"]] == [(victim, "stale")], \
        caught.stdout[-3000:]
    # With no flags at all the tail rule runs too (ten heartbeat intervals: 10 s here) and catches it ...
    alone = json.loads(aiaudit(settings, "verify", "--origin", victim, "--json").stdout)
    assert [(f["origin"], f["reason"]) for f in alone["failures"]] == [(victim, "stale")], alone["failures"]
    assert "it passes" in alone["failures"][0]["detail"] and alone["tail_rule"]["max_age_s"] == 10
    # ... and only switching it off, visibly, shows the chain as merely shorter.
    off = json.loads(aiaudit(settings, "verify", "--origin", victim, "--no-tail-rule", "--json").stdout)
    assert off["ok"] and off["tail_rule"] is None and any("tail rule is off" in w for w in off["warnings"]), off
    everything = json.loads(aiaudit(settings, "verify", "--until", end, "--as-of", end, "--max-age", "12s", "--json").stdout)
    assert {f["origin"] for f in everything["failures"] if f["reason"] == "stale"} == {victim}

    stale = aiaudit(settings, "verify", "--max-age", "5s", "--json")  # now, well after the logger stopped
    assert stale.returncode == 1, stale.stdout[-2000:]
    report = json.loads(stale.stdout)
    key_set_chains = [c["origin"] for c in report["chains"] if c["kind"] == "key_set"]  # its one record is stale too
    assert len(key_set_chains) == 1, report["kinds"]
    assert sorted(f["origin"] for f in report["failures"] if f["reason"] == "stale") == sorted([*sizes, *key_set_chains])
    assert {f["reason"] for f in report["failures"]} == {"stale", "emitter_gap"}  # (the victim's numbers)


def test_a_new_generation_closes_the_previous_chains_with_signed_final_checkpoints(settings, client, tmp_path):
    """Generation 1 chains 200 events and stops; generation 2 starts, fences and closes every
    generation-1 chain at its last size with a signed final checkpoint, and chains on. Judged a day
    later, the closed chains are not stale (their end is signed); the open ones are."""
    from datetime import datetime, timezone

    from aiaudit.pipeline.contract.emitter_keys import key_set_file, load_emitter_keys
    from aiaudit.pipeline.keys import KeyRing, read_jwks
    from aiaudit.pipeline.store.filters import Filters
    from aiaudit.pipeline.verify.sources import verify_store as verify_with
    from aiaudit.pipeline.verify.trust import Trust
    from tests.integration.support import wait_chained

    with ChainWorkers(settings, tmp_path) as workers:
        workers.start("g1")
        emit_synthetic(settings, 200, emitter_id="edge-gen-a", seed=8)
        wait_chained(settings)
        time.sleep(settings.chain.checkpoint_interval_s + 1.0)
    g2 = settings.updated(chain={"generation": 2})
    (tmp_path / "g2").mkdir()
    with ChainWorkers(g2, tmp_path / "g2") as workers:
        workers.start("g2")
        emit_synthetic(settings, 100, emitter_id="edge-gen-b", seed=9)
        wait_chained(g2)
        time.sleep(settings.chain.checkpoint_interval_s + 1.0)
        logs = workers.logs()
    sink_until_drained(settings, client)
    db = store.database(settings)
    sizes = dict(client.query(f"SELECT origin, max(seq) + 1 FROM {db}.evidence GROUP BY origin").result_rows)
    first = {o: s for o, s in sizes.items() if o.endswith("/g1")}
    second = {o for o in sizes if o.endswith("/g2")}
    assert len(first) == settings.kafka.partitions and second, sizes
    closed = dict(client.query(f"SELECT origin, size FROM {db}.checkpoints WHERE final IS NOT NULL").result_rows)
    assert closed == first, (closed, logs[-2000:])
    assert logs.count("closed at size") == len(first)

    keyring = KeyRing.from_jwks(read_jwks(settings.signing.keys_dir)).with_emitters(
        load_emitter_keys(key_set_file(settings), required=True))
    pub = read_checkpoint_public_key(checkpoint_key_file(settings.signing.keys_dir, None))
    day_later = int(datetime.now(timezone.utc).timestamp()) + 86400
    report = verify_with(client, settings, Trust(keyring, (pub,)), Filters(), tail=(day_later, 300))
    # The g2 chains are stale a day later, and so is the key-set chain (its one record, the emitter key
    # set, was chained once); the g1 chains are closed by their final checkpoints.
    key_set_chains = {c.origin for c in report.chains if c.kind == "key_set"}
    assert len(key_set_chains) == 1, report.kinds()
    assert {f.origin for f in report.failures if f.reason == "stale"} == second | key_set_chains, report.text()[-2000:]
    assert {f.reason for f in report.failures} == {"stale"}, report.text()[-2000:]
