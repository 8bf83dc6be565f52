"""Policy bundles: validation with clear errors, a stable content-hash version, and each decision path."""

from __future__ import annotations

import pytest

from aiaudit.pipeline.errors import PolicyError
from aiaudit.pipeline.gateway.policy import bundle_message, decide, parse_policy

BUNDLE = """
policy_id: acme
version: "2026.11.0"
org_terms: [{name: falcon, pattern: "project falcon", level: restricted}]
vendors:
  openai: {max_level: internal}
  azure: {max_level: confidential}
  local: {max_level: restricted}
retention_days: {standard: 90}
routes:
  default:
    roles: [engineer]
    vendors: {openai: ["gpt-4o*"], azure: ["gpt-4o"]}
    redact: ["pii.email"]
    deny: ["secret.*"]
    reroute: {vendor: local, model: llama}
    retention_scope: standard
  strict:
    roles: [engineer]
    vendors: {openai: ["gpt-4o"]}
    retention_scope: standard
"""
P = parse_policy(BUNDLE)


def d(text: str, *, route: str = "default", role: str = "engineer", model: str = "gpt-4o"):
    return decide(P, route, role, model, P.classifier.classify(text))


def test_allow():
    dec = d("hello")
    assert dec.decision == "allow" and dec.target.vendor == "openai" and dec.target.model == "gpt-4o"


def test_unknown_route_and_role_are_denied():
    assert d("hi", route="nope").decision == "deny"
    dec = d("hi", role="intern")
    assert dec.decision == "deny" and "role 'intern'" in dec.reasons[0] and dec.target is None


def test_model_outside_the_route_is_denied_and_vendor_prefix_selects_the_vendor():
    assert d("hi", model="o1-preview").decision == "deny"
    dec = d("hi", model="azure/gpt-4o")
    assert dec.decision == "allow" and dec.target.vendor == "azure"
    assert d("hi", model="azure/gpt-4o-mini").decision == "deny"  # azure allows only gpt-4o


def test_denied_category_wins_over_redaction():
    dec = d("a@b.io and AKIAIOSFODNN7EXAMPLE")
    assert dec.decision == "deny" and "secret.aws_key" in dec.reasons[0]


def test_redaction_that_brings_the_level_within_the_vendor():
    dec = d("mail a@b.io")
    assert dec.decision == "redact" and dec.redact_categories == {"pii.email"} and dec.target.vendor == "openai"


def test_level_above_the_vendor_is_rerouted_when_the_route_allows_it():
    dec = d("status of project falcon")
    assert dec.decision == "reroute" and dec.target.vendor == "local" and dec.target.model == "llama"
    dec = d("card 4111 1111 1111 1111")  # confidential: openai may not, local may
    assert dec.decision == "reroute"


def test_level_above_the_vendor_is_denied_without_a_reroute():
    dec = d("card 4111 1111 1111 1111", route="strict")
    assert dec.decision == "deny" and "confidential data may not go to openai" in dec.reasons[0]


def test_version_is_declared_plus_content_hash_and_ignores_formatting():
    assert P.version.startswith("2026.11.0+sha256.") and len(P.version.split(".")[-1]) == 64
    reformatted = parse_policy("# a comment\n" + BUNDLE.replace("roles: [engineer]", "roles:\n      - engineer"))
    assert reformatted.version == P.version
    changed = parse_policy(BUNDLE.replace("max_level: internal", "max_level: public"))
    assert changed.version != P.version and changed.version.startswith("2026.11.0+")


@pytest.mark.parametrize(("text", "message"), [
    ("routes: [", "not valid YAML"),
    ("- a list", "expected a mapping"),
    (BUNDLE.replace("roles: [engineer]\n    vendors: {openai", "roles: []\n    vendors: {openai"), "routes.default.roles"),
    (BUNDLE.replace("vendors: {openai: [\"gpt-4o*\"]", "vendors: {nobody: [\"x\"]"), "vendor 'nobody'"),
    (BUNDLE.replace("retention_scope: standard\n  strict", "retention_scope: forever\n  strict"), "retention scope 'forever'"),
    (BUNDLE.replace("max_level: internal", "max_level: secret"), "vendors.openai.max_level"),
    (BUNDLE.replace("policy_id: acme", "policy_id: acme\nsurprise: 1"), "surprise"),
    (BUNDLE.replace('pattern: "project falcon"', 'pattern: "(unclosed"'), "org_terms: bad pattern"),
    (BUNDLE.replace("  strict:", "  'bad route!':"), "route name"),
])
def test_bad_bundles_raise_policy_errors_naming_the_problem(text: str, message: str):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, source="p.yaml")


def test_category_patterns_that_match_nothing_are_errors_all_at_once():
    """`secrets.*` or `pii.emial` would let secrets and e-mail addresses through: refused, every one named."""
    text = BUNDLE.replace('redact: ["pii.email"]', 'redact: ["pii.emial", "org.falcon"]').replace(
        'deny: ["secret.*"]', 'deny: ["secrets.*", "secret.aws_key", "org.eagle"]')
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    message = str(info.value)
    assert "3 problem(s)" in message
    for bad in ("routes.default.redact[0]: 'pii.emial'", "routes.default.deny[0]: 'secrets.*'",
                "routes.default.deny[2]: 'org.eagle'"):
        assert bad + " matches no category" in message
    assert "secret.aws_key' matches" not in message and "org.falcon' matches" not in message  # real ones pass
    assert "known categories: pii.email" in message and "org.falcon" in message.split("known categories:")[1]


def test_every_schema_error_of_a_file_is_reported_at_once():
    text = BUNDLE.replace("max_level: internal", "max_level: secret").replace("policy_id: acme", "policy_id: acme\nx: 1")
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert "2 problem(s)" in str(info.value) and "vendors.openai.max_level" in str(info.value) and "x:" in str(info.value)


def test_oversized_file_is_refused():
    with pytest.raises(PolicyError, match="larger than"):
        parse_policy(BUNDLE + "#" * 1_100_000)


def test_bundle_message_carries_the_exact_text_and_canonical_form():
    msg = bundle_message(P, loaded_at="2026-11-28T08:00:00+00:00", gateway_id="gw-1")
    assert msg["source_yaml"] == BUNDLE and msg["policy_version"] == P.version
    assert msg["canonical_json"].startswith("{") and '"policy_id":"acme"' in msg["canonical_json"]


def test_a_stored_bundle_must_hash_to_the_version_it_is_stored_under():
    from aiaudit.pipeline.gateway.policy import bundle_problems

    assert bundle_problems(P.version, P.canonical_json.decode(), BUNDLE) == []
    # Someone with write access to the policies table swaps the rules under the old version.
    lax = parse_policy(BUNDLE.replace('deny: ["secret.*"]', "deny: []"))
    swapped = bundle_problems(P.version, lax.canonical_json.decode(), BUNDLE.replace('deny: ["secret.*"]', "deny: []"))
    assert len(swapped) == 2 and "hashes to sha256." in swapped[0] and "stored YAML is version" in swapped[1]
    only_yaml = bundle_problems(P.version, P.canonical_json.decode(), BUNDLE.replace('deny: ["secret.*"]', "deny: []"))
    assert len(only_yaml) == 1 and "stored YAML is version" in only_yaml[0]
    assert "has none" in bundle_problems("2026.11.0+sha256:9b3e5a6c2d18", P.canonical_json.decode(), BUNDLE)[0]
