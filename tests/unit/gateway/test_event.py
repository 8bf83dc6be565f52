"""The gateway's event: valid against the contract, commitments, trace context, content message."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone

from aiaudit.pipeline import contract
from aiaudit.pipeline.gateway.classify import content_features
from aiaudit.pipeline.gateway.event import (
    Outcome,
    build_event,
    commit,
    content_expiry,
    content_message,
    kept_content,
    trace_context,
)
from aiaudit.pipeline.gateway.identity import Principal
from aiaudit.pipeline.gateway.policy import decide
from tests.unit.gateway.test_policy import P

AT = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)


def test_commitments_are_hmacs_under_the_record_key():
    key = b"k" * 32
    c = commit("commitments", "prompt", "answer", key)
    assert c.prompt == hmac.new(key, b"prompt", hashlib.sha256).hexdigest() and c.key == key
    assert commit("none", "prompt", "answer", key) == type(c)(None, None, None)
    assert commit("full", "p", None, key).response is None


def test_trace_context():
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert trace_context(f"00-{tid}-{sid}-01") == (tid, sid)
    assert trace_context("00-" + "0" * 32 + f"-{sid}-01") == (None, None)
    assert trace_context("garbage") == (None, None) and trace_context(None) == (None, None)


def test_built_event_encodes_under_the_contract_and_round_trips():
    cls = P.classifier.classify("mail a@b.io")
    decision = decide(P, "default", "engineer", "gpt-4o", cls)
    resp = P.classifier.classify("ok")
    ev = build_event(event_id="e1", occurred_at=AT, principal=Principal("bot", "agent", "engineer", ("chat",), "api_key", "bob"),
                     untrusted_label="x" * 1000, route="default", operation="chat", provider="openai", model="gpt-4o",
                     prompt_class=cls, policy=P, decision=decision, extra_reasons=("upstream status 500",),
                     retention_scope="standard", features=content_features("mail a@b.io", cls, "ok", resp),
                     outcome=Outcome(response_model="gpt-4o", response_text="ok", response_class=resp, input_tokens=3,
                                     output_tokens=1, latency_us=1500),
                     commitments=commit("commitments", "mail a@b.io", "ok", b"k" * 32), trace=(None, None))
    data = contract.encode({**ev, "emitter_id": "gw", "emitter_seq": 0}, max_bytes=65536)
    back = contract.decode(data, max_bytes=65536)
    assert back["actor"]["untrusted_label"] == "x" * 256  # bounded
    assert back["decision"] == "redact" and back["decision_reasons"] == ["pii.email redacted", "upstream status 500"]
    assert back["prompt_classification"] == {"level": "confidential", "categories": ["pii.email"]}
    assert back["policy_version"] == P.version and back["content_features"]["prompt_pii_hits"] == 1


def test_routes_keep_content_only_under_full_and_the_message_carries_it_sealed_only():
    kept = kept_content("commitments", commit("commitments", "p", "r", b"k" * 32), "p", "r")
    assert kept is not None and kept["prompt"] is None and base64.b64decode(kept["key_b64"]) == b"k" * 32
    assert content_expiry(AT, 90).startswith("2027-02-26")
    full = kept_content("full", commit("full", "p", "r", b"k" * 32), "p", "r")
    assert full is not None and (full["prompt"], full["response"]) == ("p", "r")
    assert kept_content("none", commit("none", "p", "r", b"k"), "p", "r") is None
    msg = content_message(event_id="e1", retention_scope="standard", expires_at=content_expiry(AT, 90),
                          subjects=("alice",), key_ids={"alice": "0" * 16, "record": "1" * 16}, sealed="c2VhbGVk")
    assert set(msg) == {"v", "event_id", "retention_scope", "expires_at", "subjects", "key_ids", "sealed"}
