"""The destinations file: every kind, refusals that say why, secrets from the environment."""

from __future__ import annotations

import re

import orjson
import pytest

from aiaudit.pipeline.deliver.config import load_targets, parse_targets
from aiaudit.pipeline.errors import ConfigError

# --- the destinations file ------------------------------------------------------------


ENV = {"HOOK_KEY": "k" * 32, "HEC_TOKEN": "0b1a-22cd", "CHAT_URL": "https://hooks.slack.example/T/B/x"}


def test_a_destinations_file_with_every_kind():
    doc = {"destinations": [
        {"name": "soc", "kind": "webhook", "url": "https://soc.example/hook", "secret_env": "HOOK_KEY",
         "min_severity": "high", "detectors": ["prompt_injection"], "routes": ["chat"], "suppress_s": 60,
         "max_attempts": 4, "backoff_s": 0.5, "backoff_max_s": 10},
        {"name": "splunk", "kind": "splunk_hec", "url": "https://splunk.example:8088/services/collector/event",
         "secret_env": "HEC_TOKEN", "send": "findings"},
        {"name": "siem", "kind": "syslog", "host": "siem.example", "tls": True, "ca_file": "/etc/ca.pem"},
        {"name": "chat", "kind": "chat", "url_env": "CHAT_URL"},
        {"name": "local", "kind": "webhook", "url": "http://127.0.0.1:8080/h", "secret_env": "HOOK_KEY"}]}
    soc, splunk, siem, chat, local = parse_targets(doc, ENV)
    assert soc.secret == b"k" * 32 and soc.destination.detectors == {"prompt_injection"}
    assert soc.destination.max_attempts == 4 and soc.destination.min_severity == "high"
    assert splunk.secret == b"0b1a-22cd" and splunk.destination.min_severity == "medium"
    assert (siem.host, siem.port, siem.tls, str(siem.ca_file)) == ("siem.example", 6514, True, "/etc/ca.pem")
    assert chat.url == ENV["CHAT_URL"] and "x" not in repr(chat).split("hooks")[0]
    assert "k" * 32 not in repr(soc) and local.url.startswith("http://127.0.0.1")
    # Incidents' pages unless a destination asks for every finding.
    assert (soc.destination.send, splunk.destination.send) == ("incidents", "findings")


@pytest.mark.parametrize("entry, why", [
    ({"name": "a", "kind": "email", "url": "https://x"}, "kind must be"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "HOOK_KEY", "extra": 1}, "unknown key"),
    ({"name": "A b", "kind": "chat", "url": "https://x"}, "name:"),
    ({"name": "a", "kind": "webhook", "url": "https://x"}, "secret_env"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "UNSET"}, "UNSET"),
    ({"name": "a", "kind": "webhook", "url": "https://x", "secret_env": "HEC_TOKEN"}, "shorter than 16"),
    ({"name": "a", "kind": "splunk_hec", "url": "https://x", "secret_env": "HOOK_KEY2"}, "HOOK_KEY2"),
    ({"name": "a", "kind": "chat", "url": "http://soc.example/h"}, "plain http only to a loopback"),
    ({"name": "a", "kind": "chat", "url": "https://u:p@soc.example/h"}, "no credentials"),
    ({"name": "a", "kind": "chat", "url": "file:///etc/passwd"}, "https:// URL"),
    ({"name": "a", "kind": "chat", "url": "https://x", "url_env": "CHAT_URL"}, "one of `url` or `url_env`"),
    ({"name": "a", "kind": "chat", "url": "https://x", "min_severity": "low"}, "min_severity"),
    ({"name": "a", "kind": "chat", "url": "https://x", "max_attempts": 0}, "max_attempts"),
    ({"name": "a", "kind": "chat", "url": "https://x", "max_attempts": True}, "max_attempts"),
    ({"name": "a", "kind": "chat", "url": "https://x", "suppress_s": "900"}, "suppress_s"),
    ({"name": "a", "kind": "chat", "url": "https://x", "detectors": "prompt_injection"}, "detectors"),
    ({"name": "a", "kind": "chat", "url": "https://x", "backoff_s": 10, "backoff_max_s": 5}, "backoff"),
    ({"name": "a", "kind": "syslog"}, "needs `host`"),
    ({"name": "a", "kind": "chat", "url": "https://x", "send": "everything"}, "send: one of incidents, findings"),
    ({"name": "a", "kind": "syslog", "host": "h", "ca_file": "/ca"}, "only with tls"),
    ({"name": "a", "kind": "syslog", "host": "h", "port": 70000}, "port"),
    ({"name": "a", "kind": "syslog", "host": "h x"}, "host"),
    ("soc", "not a mapping"),
])
def test_a_bad_destination_is_refused_saying_why(entry, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_targets({"destinations": [entry]}, {**ENV, "HOOK_KEY2": "not a token!"})


def test_a_bad_file_is_refused_naming_it(tmp_path):
    good = {"name": "a", "kind": "chat", "url": "https://x.example"}
    cases = {"missing": None, "big": b"#" * 70_000, "yaml": b"destinations: [", "list": b"- a\n",
             "empty": orjson.dumps({"destinations": []}), "dup": orjson.dumps({"destinations": [good, good]}),
             "extra": orjson.dumps({"destinations": [good], "more": 1}),
             "many": orjson.dumps({"destinations": [{**good, "name": f"a{i}"} for i in range(33)]})}
    for name, content in cases.items():
        path = tmp_path / f"{name}.yaml"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match=re.escape(str(path))):
            load_targets(path, ENV)
    ok = tmp_path / "ok.yaml"
    ok.write_bytes(orjson.dumps({"destinations": [good]}))
    assert [t.destination.name for t in load_targets(ok, ENV)] == ["a"]



def test_the_example_destinations_file_parses_with_its_secrets_from_the_environment():
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "examples" / "delivery" / "destinations.yaml"
    env = {"SOC_WEBHOOK_KEY": "k" * 32, "SPLUNK_HEC_TOKEN": "abc-123", "SOC_SLACK_WEBHOOK_URL": "https://hooks.example/x"}
    assert [t.destination.kind for t in load_targets(path, env)] == ["webhook", "splunk_hec", "syslog", "chat"]
    with pytest.raises(ConfigError, match="SOC_WEBHOOK_KEY"):
        load_targets(path, {k: v for k, v in env.items() if k != "SOC_WEBHOOK_KEY"})
