"""The destinations file (AIAUDIT_DELIVER__DESTINATIONS_FILE): where findings go, parsed strictly.

    destinations:
      - name: soc-webhook            # [a-z0-9_-], unique; part of every delivery id
        kind: webhook                # webhook | splunk_hec | syslog | chat
        send: incidents              # incidents (default): each incident's page, once, and the daily
                                     # digest of pages the budget held back; findings: every finding;
                                     # requests: every request record as an OCSF event (a SIEM)
        url: https://soc.example/hooks/aiaudit
        secret_env: SOC_WEBHOOK_SECRET   # the HMAC key (webhook) or HEC token (splunk_hec), from the environment
        min_severity: high           # medium | high | critical
        detectors: [prompt_injection, secrets_sent]   # any of these fired; omitted: any
        routes: [chat]               # omitted: any
        suppress_s: 900              # one delivery per (identity, detector) in this window
        max_attempts: 6
        backoff_s: 2
        backoff_max_s: 300
        timeout_s: 10                # one attempt's longest wait for an answer
        in_flight: 4                 # attempts outstanding at once; a slow receiver holds only its own
      - name: siem
        kind: syslog
        host: siem.example
        port: 6514
        tls: true
        ca_file: /etc/aiaudit/siem-ca.pem

Secrets never sit in the file: `secret_env` names an environment variable, and a chat webhook's URL
(which is its secret) can come from `url_env`. Plain http only to a loopback address; unknown keys,
duplicate names and out-of-range numbers are refused, naming the file and the destination.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aiaudit.pipeline.deliver.policy import SENDS, SEVERITY_RANK, Destination
from aiaudit.pipeline.deliver.send import Target
from aiaudit.pipeline.errors import ConfigError

MAX_FILE_BYTES = 64 * 1024
MAX_DESTINATIONS = 32
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = ("webhook", "splunk_hec", "syslog", "chat")
HTTP_KINDS = ("webhook", "splunk_hec", "chat")
MIN_WEBHOOK_SECRET_BYTES = 16
_COMMON = {"name", "kind", "send", "min_severity", "detectors", "routes", "suppress_s", "max_attempts", "backoff_s",
           "backoff_max_s", "timeout_s", "in_flight"}
_KEYS = {"webhook": _COMMON | {"url", "url_env", "secret_env"}, "splunk_hec": _COMMON | {"url", "url_env", "secret_env", "host_name"},
         "chat": _COMMON | {"url", "url_env"}, "syslog": _COMMON | {"host", "port", "tls", "ca_file", "host_name"}}


def load_targets(path: Path, env: Mapping[str, str] | None = None) -> list[Target]:
    """The destinations in `path`, each with its credentials from `env` (default: os.environ).
    Raises ConfigError naming the file and what is wrong."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"destinations file {path}: {exc.strerror}") from exc
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES:,} bytes")
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"not YAML ({str(exc).splitlines()[0][:120]})") from None
        return parse_targets(doc, os.environ if env is None else env)
    except ValueError as exc:
        raise ConfigError(f"destinations file {path}: {exc}") from exc


def parse_targets(doc: Any, env: Mapping[str, str]) -> list[Target]:
    if not isinstance(doc, dict) or set(doc) != {"destinations"} or not isinstance(doc["destinations"], list):
        raise ValueError("must be a mapping with one key, `destinations`, a list")
    entries = doc["destinations"]
    if not 1 <= len(entries) <= MAX_DESTINATIONS:
        raise ValueError(f"between 1 and {MAX_DESTINATIONS} destinations")
    targets, seen = [], set()
    for i, entry in enumerate(entries):
        label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"#{i + 1}"
        try:
            target = _target(entry, env)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"destination {str(label)[:64]!r}: {exc}") from None
        if target.destination.name in seen:
            raise ValueError(f"destination {target.destination.name!r} is named twice")
        seen.add(target.destination.name)
        targets.append(target)
    return targets


def _target(entry: Any, env: Mapping[str, str]) -> Target:
    if not isinstance(entry, dict):
        raise ValueError("not a mapping")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    unknown = set(entry) - _KEYS[kind]
    if unknown:
        raise ValueError(f"unknown key(s) for a {kind}: {', '.join(sorted(map(str, unknown)))}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError("name: 1-64 of a-z, 0-9, _ and -, starting with a letter or digit")
    dest = Destination(
        name=name, kind=kind, send=_choice(entry, "send", SENDS, "incidents"), min_severity=_choice(entry, "min_severity", tuple(SEVERITY_RANK), "medium"),
        detectors=_names(entry, "detectors"), routes=_names(entry, "routes"),
        suppress_s=_number(entry, "suppress_s", 900.0, 0, 7 * 86400),
        max_attempts=int(_number(entry, "max_attempts", 6, 1, 20, integer=True)),
        backoff_s=_number(entry, "backoff_s", 2.0, 0.05, 3600), backoff_max_s=_number(entry, "backoff_max_s", 300.0, 0.05, 86400),
        timeout_s=_number(entry, "timeout_s", 10.0, 0.1, 120),
        in_flight=int(_number(entry, "in_flight", 4, 1, 64, integer=True)))
    host_name = _text(entry, "host_name", "aiaudit", 255)
    if kind == "syslog":
        host = _text(entry, "host", "", 255)
        if not host:
            raise ValueError("a syslog destination needs `host`")
        tls = entry.get("tls", False)
        if not isinstance(tls, bool):
            raise ValueError("tls: true or false")
        ca = entry.get("ca_file")
        if ca is not None and (not tls or not isinstance(ca, str)):
            raise ValueError("ca_file: a path, and only with tls: true")
        return Target(dest, host=host, port=int(_number(entry, "port", 6514 if tls else 601, 1, 65535, integer=True)),
                      tls=tls, ca_file=Path(ca) if ca else None, hostname=host_name)
    url = _url(entry, env)
    secret = b""
    if kind in ("webhook", "splunk_hec"):
        var = entry.get("secret_env")
        if not isinstance(var, str) or not var:
            raise ValueError(f"a {kind} needs `secret_env`, the environment variable holding its "
                             f"{'HMAC key' if kind == 'webhook' else 'HEC token'}")
        value = env.get(var, "")
        if not value:
            raise ValueError(f"the environment variable {var} (secret_env) is not set")
        if kind == "webhook" and len(value.encode()) < MIN_WEBHOOK_SECRET_BYTES:
            raise ValueError(f"the HMAC key in {var} is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes")
        if kind == "splunk_hec" and not re.fullmatch(r"[A-Za-z0-9-]{1,128}", value):
            raise ValueError(f"the HEC token in {var} is not a token (letters, digits and '-')")
        secret = value.encode()
    return Target(dest, url=url, secret=secret, hostname=host_name)


def _url(entry: dict[str, Any], env: Mapping[str, str]) -> str:
    if ("url" in entry) == ("url_env" in entry):
        raise ValueError("give one of `url` or `url_env` (the environment variable holding the URL)")
    if "url_env" in entry:
        var = entry["url_env"]
        if not isinstance(var, str) or not env.get(var):
            raise ValueError(f"the environment variable {var} (url_env) is not set")
        url, shown = env[var], f"the URL in {var}"
    else:
        url, shown = entry["url"], "url"
    if not isinstance(url, str) or len(url) > 2048:
        raise ValueError(f"{shown}: a URL of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{shown}: an https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"{shown}: no credentials in the URL (use secret_env)")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{shown}: plain http only to a loopback address; use https")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _choice(entry: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise ValueError(f"{key}: one of {', '.join(allowed)}")
    return str(value)


def _names(entry: dict[str, Any], key: str) -> frozenset[str] | None:
    if key not in entry:
        return None
    value = entry[key]
    if not isinstance(value, list) or not 1 <= len(value) <= 64 or \
            not all(isinstance(v, str) and 0 < len(v) <= 128 for v in value):
        raise ValueError(f"{key}: a list of 1-64 names")
    return frozenset(value)


def _number(entry: dict[str, Any], key: str, default: float, low: float, high: float, *, integer: bool = False) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not low <= value <= high:
        raise ValueError(f"{key}: {'an integer' if integer else 'a number'} from {low:g} to {high:g}")
    return float(value)


def _text(entry: dict[str, Any], key: str, default: str, limit: int) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 33 or ord(c) > 126 for c in value):
        raise ValueError(f"{key}: at most {limit} printable characters, no spaces")
    return value
