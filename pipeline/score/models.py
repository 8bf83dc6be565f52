"""`aiaudit detect`: train, promote and evaluate anomaly models (the I/O around `detectors/`).

Training reads chained events (an export file, or the evidence table over a time window),
in time order, through the same feature extractor the scorer uses. A version becomes live
by promotion: `live.json` holds its manifest (and so the SHA-256 its artifact must match), who
promoted it and when, signed with the operator's record key.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import yaml
from clickhouse_connect.driver.client import Client

from aiaudit.detectors.features import FeatureExtractor
from aiaudit.detectors.model import Detector, RulesOnly, Scorer, check_version, load, save, train
from aiaudit.detectors.rules import RuleConfig, config_from_policy
from aiaudit.detectors.rules_file import MAX_BYTES as RULES_MAX_BYTES
from aiaudit.detectors.rules_file import RulesFileError, parse_rules_file
from aiaudit.pipeline import store
from aiaudit.pipeline.chain.record import parse_payload
from aiaudit.pipeline.contract import format_ts
from aiaudit.pipeline.errors import ConfigError
from aiaudit.pipeline.export.read import read_export
from aiaudit.pipeline.files import file_stamp
from aiaudit.pipeline.keys import Ed25519Signer, KeyId, KeyRing
from aiaudit.pipeline.settings import Settings
from aiaudit.pipeline.store import evidence, promotions
from aiaudit.pipeline.store.filters import Filters

LIVE = "live.json"
log = logging.getLogger("aiaudit.score")


def events_from_export(path: Path) -> Iterator[dict[str, Any]]:
    """The events of an `aiaudit export` file. Raises ConfigError naming a bad line."""
    for lineno, rec in enumerate(read_export(path), 1):
        try:
            yield parse_payload(rec.payload)["event"]
        except ValueError as exc:
            raise ConfigError(f"{path}: record {rec.origin} seq {rec.seq} (record {lineno}): {exc}") from exc


TRAINING_PAGE = 10_000  # records a query: a page stays under the store API's caps (a running sink's)


def events_from_store(settings: Settings, filters: Filters) -> Iterator[dict[str, Any]]:
    """The events of the matching records (each once), chain by chain in pages of TRAINING_PAGE
    seqs: read through a running sink, one query for a whole store would pass the store API's
    caps (100,000 rows, 64 MiB) once the store holds a few runs of traffic."""
    client = store.open_reads(settings, "train")
    db = store.database(settings)
    try:
        slices = store.query_rows(client, *evidence.select_chain_slices(db, filters))[1]
        for origin, first, last in slices:
            for lo in range(int(first), int(last) + 1, TRAINING_PAGE):
                sql, params = evidence.select_payloads(db, filters, origin, lo, min(int(last), lo + TRAINING_PAGE - 1))
                for (payload,) in store.stream_rows(client, sql, params, evidence.BYTES):
                    yield parse_payload(payload)["event"]
    finally:
        client.close()


def train_from(events: Iterable[dict[str, Any]], *, version: str, seed: int, models_dir: Path) -> dict[str, Any]:
    check_version(version)  # before reading any event
    ordered = sorted(events, key=lambda e: e["occurred_at"])
    if len(ordered) < 50:
        raise ConfigError(f"training needs at least 50 events, got {len(ordered)}")
    fx = FeatureExtractor()
    X = np.array([fx(e) for e in ordered])
    detector = train(X, version=version, seed=seed, window=(ordered[0]["occurred_at"], ordered[-1]["occurred_at"]))
    return save(detector, models_dir)


PROMOTION_DOMAIN = b"aiaudit/promotion/v1\n"  # what a promotion signature covers, before the JCS body


def _promotion_body(manifest: dict[str, Any], by: str, at: str) -> bytes:
    # Sorted, compact JSON (the manifest holds floats, which JCS here refuses): the verifier
    # re-renders the parsed live.json the same way, floats round-tripping through repr.
    return json.dumps({"manifest": manifest, "promoted_by": by, "promoted_at": at}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def promote(models_dir: Path, version: str, signer: Ed25519Signer, *, by: str,
            at: datetime | None = None) -> dict[str, Any]:
    """Make `version` live; refuses an artifact that no longer matches its manifest. live.json is
    signed with the operator's record key: whoever can write the models folder but not the keys
    cannot promote a model of their own (the scorer checks the signature against the JWKS)."""
    check_version(version)  # raises ArtifactRefused for a name that is not a plain version
    if not by.strip():
        raise ConfigError("say who promotes the model (--by)")
    try:
        manifest = json.loads((models_dir / f"{version}.json").read_text())
    except OSError as exc:
        raise ConfigError(f"no model {version} in {models_dir}: {exc.strerror}") from exc
    load(models_dir, version, expected_sha256=manifest["sha256"], manifest=manifest)  # raises ArtifactRefused
    stamp = format_ts(at or datetime.now(timezone.utc))
    signature = signer.sign(PROMOTION_DOMAIN + _promotion_body(manifest, by, stamp))
    live = {"manifest": manifest, "promoted_by": by, "promoted_at": stamp, "kid": signer.kid,
            "signature": base64.b64encode(signature).decode("ascii")}
    tmp = models_dir / (LIVE + ".tmp")
    tmp.write_text(json.dumps(live, indent=2) + "\n")
    tmp.replace(models_dir / LIVE)
    return cast(dict[str, Any], manifest)


def live_promotion(models_dir: Path, keyring: KeyRing) -> dict[str, Any]:
    """The signed promotion in live.json, checked against `keyring`. Raises ConfigError naming why not."""
    return _verified_live(models_dir, keyring)[0]


def _verified_live(models_dir: Path, keyring: KeyRing) -> tuple[dict[str, Any], str]:
    """live.json parsed and checked, with its text as read (what a promotion record keeps)."""
    try:
        text = (models_dir / LIVE).read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"no promoted model in {models_dir}: run `aiaudit detect train` and "
                          "`aiaudit detect promote`") from exc
    except OSError as exc:
        raise ConfigError(f"{models_dir / LIVE} cannot be read: {exc.strerror}") from exc
    return check_promotion(text, keyring, where=str(models_dir / LIVE)), text


def check_promotion(text: str, keyring: KeyRing, *, where: str = LIVE) -> dict[str, Any]:
    """A promotion's text (live.json, or a promotion record's copy) parsed, its signature checked
    against `keyring`. Raises ConfigError naming why not."""
    try:
        live = json.loads(text)
        manifest, by, at, kid = live["manifest"], live["promoted_by"], live["promoted_at"], live["kid"]
        signature = base64.b64decode(live["signature"], validate=True)
        body = _promotion_body(manifest, by, at)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where} is not a signed promotion ({type(exc).__name__}: {exc}); "
                          "promote the model again with `aiaudit detect promote`") from exc
    if not isinstance(kid, str) or kid not in keyring or not keyring.verify(KeyId(kid), signature, PROMOTION_DOMAIN + body):
        raise ConfigError(f"{where}: its signature does not verify under the keys folder's JWKS "
                          f"(key {str(kid)[:50]}): the promotion was not made with an operator's key")
    return cast(dict[str, Any], live)


def live_detector(models_dir: Path, keyring: KeyRing) -> Detector:
    """The promoted model: live.json's signature must verify and the artifact must hash to what it
    says (arrays only, so even a forged live.json could not make loading run code)."""
    return live_model(models_dir, keyring).detector


@dataclass(frozen=True)
class Promoted:
    """A verified promotion and the detector it names: what a scorer scores with, and records."""

    detector: Detector
    live: dict[str, Any]
    live_json: str

    @property
    def key(self) -> tuple[str, str]:
        return self.detector.version, str(self.live["promoted_at"])


def live_model(models_dir: Path, keyring: KeyRing) -> Promoted:
    live, text = _verified_live(models_dir, keyring)
    manifest = live["manifest"]
    detector = load(models_dir, check_version(str(manifest.get("version"))), expected_sha256=str(manifest["sha256"]),
                    manifest=manifest)
    return Promoted(detector, live, text)


def trained_models(models_dir: Path) -> list[dict[str, Any]]:
    """Every trained model's manifest summary, newest first, and whether it is the live one."""
    live = None
    try:
        live = json.loads((models_dir / LIVE).read_text())["manifest"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    out = []
    for path in models_dir.glob("*.json") if models_dir.is_dir() else []:
        if path.name == LIVE:
            continue
        try:
            manifest = json.loads(path.read_text())
            window = (manifest.get("training") or {}).get("window") or [None, None]
            out.append({"version": manifest["version"], "live": manifest["version"] == live,
                        "trained_at": datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"),
                        "rows": (manifest.get("training") or {}).get("rows"), "window": f"{window[0]} .. {window[1]}",
                        "format": manifest.get("format"), "sha256": str(manifest.get("sha256", ""))[:16]})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a model manifest
    return sorted(out, key=lambda m: m["trained_at"], reverse=True)


MAX_POLICY_BYTES = 1_048_576


def rule_config(settings: Settings) -> RuleConfig:
    """The rule detectors' configuration: the policy file's vendors section, when one is set, and
    the rules file's thresholds, when one is set. Raises ConfigError naming the file and what is
    wrong with it."""
    base = policy_rule_config(settings)
    return base if settings.score.rules_file is None else read_rules_file(settings.score.rules_file, base)


def read_rules_file(path: Path, base: RuleConfig) -> RuleConfig:
    """`base` with the rules file at `path` (detectors/rules_file.py). Raises ConfigError."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(RULES_MAX_BYTES + 1)
        return parse_rules_file(raw, base)
    except OSError as exc:
        raise ConfigError(f"AIAUDIT_SCORE__RULES_FILE {path}: {exc.strerror}") from exc
    except RulesFileError as exc:
        raise ConfigError(f"AIAUDIT_SCORE__RULES_FILE {path}: {exc}") from exc


class LiveRules:
    """The rule configuration for a running scorer: the rules file is looked at every
    `check_every_s`, and a changed file that parses replaces the configuration between two
    batches; one that does not keeps the one in force (logged once per change)."""

    def __init__(self, settings: Settings, *, check_every_s: float = 2.0) -> None:
        self.path, self.check_every_s = settings.score.rules_file, check_every_s
        self.base = policy_rule_config(settings)
        self.config = rule_config(settings)  # raises ConfigError: a scorer does not start on a bad file
        self._watch = FileWatch(self.path, check_every_s) if self.path is not None else None
        describe_rules(self.config, self.path)

    def __call__(self) -> RuleConfig:
        if self.path is None or self._watch is None or not self._watch.changed():
            return self.config
        try:
            config = read_rules_file(self.path, self.base)
        except ConfigError as exc:
            log.error("the changed rules file is not used: %s; still scoring with %s", exc, self.config.version)
            return self.config
        if config.version != self.config.version:
            describe_rules(config, self.path, was=self.config.version)
        self.config = config
        return config


def describe_rules(config: RuleConfig, path: Path | None, *, was: str | None = None) -> None:
    """Say which rules are in force: the version, and every rule switched off (visibly)."""
    source = f"the rules file {path}" if path is not None else "the default thresholds"
    log.info("rules %s from %s%s", config.version, source, f" (was {was})" if was else "")
    if config.off:
        log.warning("rules switched off by %s: %s", path, ", ".join(sorted(config.off)))


def policy_rule_config(settings: Settings) -> RuleConfig:
    """The rule detectors' configuration from the policy file's vendors section, when one is set.
    Raises ConfigError naming the file and what is wrong with it."""
    path = settings.score.policy_file
    if path is None:
        return RuleConfig()
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_POLICY_BYTES + 1)
        if len(raw) > MAX_POLICY_BYTES:
            raise ValueError(f"larger than {MAX_POLICY_BYTES:,} bytes")
        doc = yaml.safe_load(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a mapping")
        return config_from_policy(doc)
    except OSError as exc:
        raise ConfigError(f"AIAUDIT_SCORE__POLICY_FILE {path}: {exc.strerror}") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"AIAUDIT_SCORE__POLICY_FILE {path}: {str(exc).splitlines()[0][:200]}") from exc


class FileWatch:
    """Whether a file may have changed since it was last looked at: its modification time and size,
    looked at most every `every_s` (a scorer asks before every batch)."""

    def __init__(self, path: Path, every_s: float) -> None:
        self.path, self.every_s = path, every_s
        self._stamp = file_stamp(self.path)
        self._checked = time.monotonic()

    def changed(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return False
        self._checked = now
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True


class LiveModel:
    """The promoted detector for a running scorer: live.json is looked at every `check_every_s`,
    and a new promotion that verifies replaces the model between two batches (no restart). One
    that does not verify, or whose artifact fails its hash, keeps the current model and is
    logged once. `promoted` is the verified promotion behind the detector returned last, or None
    while no model has been promoted (the rules score alone, and the log says so)."""

    def __init__(self, models_dir: Path, keyring: KeyRing, *, check_every_s: float = 2.0) -> None:
        self.models_dir, self.keyring, self.check_every_s = models_dir, keyring, check_every_s
        self._watch = FileWatch(models_dir / LIVE, check_every_s)
        self.promoted: Promoted | None = None
        if not (models_dir / LIVE).exists():
            log.warning("no promoted model in %s: scoring with the rules only until one is promoted (`aiaudit detect "
                        "train`, then `aiaudit detect promote`; it is taken up without a restart)", models_dir)
        else:
            self.promoted = live_model(models_dir, keyring)  # raises ConfigError: one that does not verify
            log.info("scoring with model %s (promoted by %s at %s)", self.promoted.detector.version,
                     self.promoted.live["promoted_by"], self.promoted.live["promoted_at"])

    @property
    def detector(self) -> Scorer:
        return self.promoted.detector if self.promoted is not None else RULES_ONLY

    def __call__(self) -> Promoted | None:
        """The promotion to score the next batch with (None: the rules only)."""
        if not self._watch.changed():
            return self.promoted
        try:
            promoted = live_model(self.models_dir, self.keyring)
        except ConfigError as exc:
            log.error("a new promotion is not used: %s; still scoring with %s", exc, self.detector.version)
            return self.promoted
        if self.promoted is None or promoted.key != self.promoted.key:
            log.info("model %s promoted by %s at %s: scoring with it from the next batch (was %s)",
                     promoted.detector.version, promoted.live["promoted_by"], promoted.live["promoted_at"],
                     self.detector.version)
        self.promoted = promoted
        return promoted


RULES_ONLY = RulesOnly()


def promotion_history(client: Client, settings: Settings, keyring: KeyRing) -> list[dict[str, Any]]:
    """Each model promotion a scoring worker used, oldest first: version, artifact hash, who promoted
    it and when, when it first scored, and whether its signed copy verifies under `keyring` now."""
    names, rows = store.query_rows(client, *promotions.select_history(store.database(settings)))
    out = []
    for row in rows:
        r = dict(zip(names, row))
        try:
            live = check_promotion(r.pop("live_json"), keyring, where=f"promotion of {r['version']}")
            same = (live["manifest"]["version"], live["manifest"]["sha256"], live["promoted_by"], live["kid"]) == \
                (r["version"], r["sha256"], r["promoted_by"], r["kid"])
            r["signature"] = "verified" if same else "NO: the record's fields differ from its signed copy"
        except ConfigError as exc:
            r["signature"] = f"NO: {exc}"
        out.append(r)
    return out
