"""The auditor's pinned trust file: what it accepts, what it refuses, and what its windows and
witness requirement do to a verification."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.pipeline.chain.note import SIG_COSIGNATURE_V1, SIG_ED25519, Checkpoint, NoteSigner, cosign, split_note
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.keys import Ed25519Signer
from aiaudit.pipeline.verify.rules import verify_chain
from aiaudit.pipeline.verify.tree import open_checkpoints
from aiaudit.pipeline.verify.trust import parse_trust
from tests.unit.helpers import ORIGIN, build_chain, stored
from tests.unit.verify.test_tree import CP_KEY, CP_PUB, notes_for

SIGNER = Ed25519Signer.generate()
WITNESS = NoteSigner.local("witness.example/w1", SIG_COSIGNATURE_V1, Ed25519PrivateKey.generate())


def trust_doc(**over):
    doc = {"record_keys": {"keys": [SIGNER.jwk()]}, "checkpoint_keys": [base64.b64encode(CP_PUB).decode()],
           "witnesses": [{"vkey": WITNESS.verifier.vkey(), "url": "http://127.0.0.1:9/"}], "min_cosignatures": 1}
    doc.update(over)
    return json.dumps(doc)


def test_a_good_trust_file_gives_keys_checkpoint_keys_and_witnesses():
    t = parse_trust(trust_doc(), "trust.json")
    assert SIGNER.kid in t.keyring and t.checkpoint_keys == (CP_PUB,) and t.min_cosignatures == 1
    assert t.witnesses[0][0] == WITNESS.verifier and t.witnesses[0][1] == "http://127.0.0.1:9/"


@pytest.mark.parametrize("over,message", [
    ({"extra": 1}, "extra"),
    ({"checkpoint_keys": ["AAAA"]}, "checkpoint_keys\\[0\\] is 3 bytes"),
    ({"checkpoint_keys": [{"key": "A" * 43 + "=", "not_before": "yesterday"}]}, "not an RFC 3339 time"),
    ({"checkpoint_keys": [{"key": "A" * 43 + "=", "not_after": "2026-01-01T00:00:00"}]}, "needs a time zone"),
    ({"checkpoint_keys": [{"key": "A" * 43 + "=", "not_before": "2027-01-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z"}]},
     "not_before must be before not_after"),
    ({"checkpoint_keys": [{"key": "A" * 43 + "=", "extra": 1}]}, "extra"),
    ({"witnesses": [{"vkey": "x" * 20, "not_before": 5}]}, "not_before"),
    ({"max_checkpoint_age": "15 minutes"}, "not a duration"),
    ({"checkpoint_keys": []}, "checkpoint_keys"),
    ({"min_cosignatures": 2}, "more than the witnesses pinned"),
    ({"witnesses": [{"vkey": NoteSigner.local("w", SIG_ED25519, Ed25519PrivateKey.generate()).verifier.vkey()}],
      "min_cosignatures": 0}, "not a cosignature"),
    ({"witnesses": [{"vkey": "garbage+zz+AA"}]}, "witnesses\\[0\\]"),
    ({"record_keys": {"keys": []}}, "no Ed25519 key"),
    ({"operator_keys": ["AAAA"]}, "operator_keys\\[0\\] is 3 bytes"),
    ({"operator_keys": ["not base64!"]}, "operator_keys\\[0\\] is not base64"),
    ({"record_keys": {"keys": [{**SIGNER.jwk(), "not_before": "yesterday"}]}}, "RFC 3339"),
])
def test_a_bad_trust_file_is_refused_naming_what(over, message):
    with pytest.raises(ConfigError, match=message):
        parse_trust(trust_doc(**over), "trust.json")


def test_a_record_signed_outside_its_keys_window_fails():
    recs = stored(build_chain(3, SIGNER))
    early = parse_trust(trust_doc(record_keys={"keys": [{**SIGNER.jwk(), "not_after": "2026-01-01T00:00:00Z"}]}),
                        "t").keyring
    with pytest.raises(Exception) as info:
        verify_chain(recs, early)
    assert {f.reason for f in info.value.failures} == {"key_out_of_window"}
    inside = parse_trust(trust_doc(record_keys={"keys": [{**SIGNER.jwk(), "not_before": "2026-01-01T00:00:00+00:00",
                                                          "not_after": "2027-01-01T00:00:00Z"}]}), "t").keyring
    assert verify_chain(recs, inside).records == 3


def test_checkpoints_need_the_required_witness_cosignatures():
    recs = build_chain(4, SIGNER)
    notes = notes_for(recs, {4})
    text, _ = split_note(notes[0][1])
    good = cosign(text, WITNESS, 1_800_000_000).line()
    with_cosig = open_checkpoints(ORIGIN, notes, [CP_PUB], cosigs=[(4, good)], witnesses=[WITNESS.verifier],
                                  min_cosignatures=1)
    assert with_cosig.cosigned == {4: {WITNESS.name}}
    list(with_cosig.feed(stored(recs)))
    with_cosig.finish()
    assert with_cosig.failures == []
    without = open_checkpoints(ORIGIN, notes, [CP_PUB], witnesses=[WITNESS.verifier], min_cosignatures=1)
    list(without.feed(stored(recs)))
    without.finish()
    assert [f.reason for f in without.failures] == ["unwitnessed"]
    other = cosign(Checkpoint(ORIGIN, 4, bytes(32)).text(), WITNESS, 1_800_000_000).line()  # over another tree
    bad = open_checkpoints(ORIGIN, notes, [CP_PUB], cosigs=[(4, other)], witnesses=[WITNESS.verifier])
    assert [f.reason for f in bad.failures] == ["bad_checkpoint"]


def test_a_rotated_checkpoint_key_still_verifies_older_checkpoints():
    recs = build_chain(4, SIGNER)
    new_key = Ed25519PrivateKey.generate()
    old_notes, new_notes = notes_for(recs, {2}), notes_for(recs, {4}, key=new_key)
    new_pub = NoteSigner.local("x", SIG_ED25519, new_key).public_key
    check = open_checkpoints(ORIGIN, old_notes + new_notes, [CP_PUB, new_pub])
    assert sorted(check.roots) == [2, 4] and check.failures == []
    assert open_checkpoints(ORIGIN, new_notes, [CP_PUB]).failures[0].reason == "bad_checkpoint"  # not pinned


def windowed_trust(cp_window=None, witness_window=None):
    entry = base64.b64encode(CP_PUB).decode()
    doc = {"checkpoint_keys": [{"key": entry, **cp_window} if cp_window else entry],
           "witnesses": [{"vkey": WITNESS.verifier.vkey(), **(witness_window or {})}], "min_cosignatures": 0,
           "max_checkpoint_age": "15m"}
    return parse_trust(trust_doc(**doc), "t")


def stamp(recs, size, ts):
    from aiaudit.pipeline.chain.checkpoint import extend, log_clock, timestamp_line
    from aiaudit.pipeline.chain.merkle import CompactRange

    tree, _ = extend(CompactRange(), [r.leaf_hash for r in recs[:size]])
    return timestamp_line(ORIGIN, tree, log_clock(ORIGIN, NoteSigner.local(ORIGIN, SIG_ED25519, CP_KEY)), ts)


T_IN, T_OUT = 1_780_000_000, 1_900_000_000  # 2026-05-28 and 2030-03-17
WINDOW = {"not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"}


def test_a_checkpoint_key_window_is_judged_on_the_logs_signed_times():
    recs = build_chain(4, SIGNER)
    trust = windowed_trust(cp_window=WINDOW)
    assert trust.max_checkpoint_age_s == 900 and set(trust.windows) == {CP_PUB}
    notes = notes_for(recs, {2, 4})
    inside = open_checkpoints(ORIGIN, notes, trust.checkpoint_keys, cosigs=[(2, stamp(recs, 2, T_IN)),
                              (4, stamp(recs, 4, T_IN))], windows=trust.windows)
    assert inside.failures == [] and set(inside.roots) == {2, 4}
    # Signed with the key after its window closed (a key retired, or stolen): the root is not trusted.
    late = open_checkpoints(ORIGIN, notes, trust.checkpoint_keys, cosigs=[(2, stamp(recs, 2, T_IN)),
                            (4, stamp(recs, 4, T_OUT))], windows=trust.windows)
    assert [f.reason for f in late.failures] == ["key_out_of_window", "key_out_of_window"]
    assert set(late.roots) == {2} and late.signed_time == T_IN
    # No signed time at all under a windowed key: nothing shows when it signed.
    bare = open_checkpoints(ORIGIN, notes, trust.checkpoint_keys, windows=trust.windows)
    assert [f.reason for f in bare.failures] == ["key_out_of_window"] * 2 and bare.roots == {}


def test_a_witness_cosignature_outside_the_witness_keys_window_does_not_count():
    recs = build_chain(4, SIGNER)
    trust = windowed_trust(witness_window=WINDOW)
    notes = notes_for(recs, {4})
    text, _ = split_note(notes[0][1])
    ok = open_checkpoints(ORIGIN, notes, trust.checkpoint_keys, cosigs=[(4, cosign(text, WITNESS, T_IN).line())],
                          witnesses=[WITNESS.verifier], windows=trust.windows)
    assert ok.failures == [] and ok.cosigned == {4: {WITNESS.name}}
    out = open_checkpoints(ORIGIN, notes, trust.checkpoint_keys, cosigs=[(4, cosign(text, WITNESS, T_OUT).line())],
                           witnesses=[WITNESS.verifier], windows=trust.windows)
    assert [f.reason for f in out.failures] == ["key_out_of_window"] and out.cosigned == {} and out.signed_time is None


def test_a_trust_file_pins_emitter_keys_and_can_require_signatures():
    emitter = Ed25519Signer.generate()
    trust = parse_trust(trust_doc(emitter_keys={"keys": [{**emitter.jwk(), "emitter": "billing"}]},
                                  require_emitter_signatures=True), "t.json")
    assert trust.keyring.emitters is not None and trust.keyring.emitters.required
    assert parse_trust(trust_doc(), "t.json").keyring.emitters is None
    with pytest.raises(ConfigError, match="require_emitter_signatures needs emitter_keys"):
        parse_trust(trust_doc(require_emitter_signatures=True), "t.json")
    with pytest.raises(ConfigError, match="emitter_keys: .*'emitter' name"):
        parse_trust(trust_doc(emitter_keys={"keys": [emitter.jwk()]}), "t.json")


def test_trust_init_writes_what_parse_trust_reads():
    from aiaudit.pipeline.verify.trust import trust_document

    op = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    doc = trust_document({"keys": [SIGNER.jwk()]}, [CP_PUB], operator_keys=[op],
                         witnesses=[(WITNESS.verifier.vkey(), "http://127.0.0.1:9/")], max_checkpoint_age="15m")
    t = parse_trust(json.dumps(doc), "made")
    assert t.operator_keys == (op,) and t.min_cosignatures == 1 and t.max_checkpoint_age_s == 900
    assert SIGNER.kid in t.keyring and t.checkpoint_keys == (CP_PUB,)
