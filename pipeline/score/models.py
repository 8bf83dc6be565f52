"""`aiaudit detect`: train, promote and evaluate anomaly models (the I/O around `detectors/`).

Training reads chained events (an export file, or the evidence table over a time window),
in time order, through the same feature extractor the scorer uses. A version becomes live
by promotion: `live.json` holds its manifest, and so the SHA-256 its artifact must match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from detectors.features import FeatureExtractor
from detectors.model import Detector, check_version, load, save, train
from pipeline import store
from pipeline.chain.record import parse_payload
from pipeline.errors import ConfigError
from pipeline.query.export import read_export
from pipeline.settings import Settings
from pipeline.store import evidence
from pipeline.store.filters import Filters

LIVE = "live.json"


def events_from_export(path: Path) -> Iterator[dict[str, Any]]:
    """The events of an `aiaudit export` file. Raises ConfigError naming a bad line."""
    for lineno, rec in enumerate(read_export(path), 1):
        try:
            yield parse_payload(rec.payload)["event"]
        except ValueError as exc:
            raise ConfigError(f"{path}: record {rec.origin} seq {rec.seq} (record {lineno}): {exc}") from exc


def events_from_store(settings: Settings, filters: Filters) -> Iterator[dict[str, Any]]:
    client = store.connect(settings, must_exist=True)
    try:
        sql, params = evidence.select_payloads(store.database(settings), filters)
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


def promote(models_dir: Path, version: str) -> dict[str, Any]:
    """Make `version` live; refuses an artifact that no longer matches its manifest."""
    check_version(version)  # raises ArtifactRefused for a name that is not a plain version
    try:
        manifest = json.loads((models_dir / f"{version}.json").read_text())
    except OSError as exc:
        raise ConfigError(f"no model {version} in {models_dir}: {exc.strerror}") from exc
    load(models_dir, version, expected_sha256=manifest["sha256"], manifest=manifest)  # raises ArtifactRefused
    (models_dir / LIVE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def live_detector(models_dir: Path) -> Detector:
    """The promoted model: its artifact must hash to what live.json says (arrays only, so even a
    forged live.json cannot make loading run code)."""
    try:
        manifest = json.loads((models_dir / LIVE).read_text())
        version, digest = manifest["version"], manifest["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"no promoted model in {models_dir} ({exc}); run `aiaudit detect promote`") from exc
    return load(models_dir, check_version(version), expected_sha256=str(digest), manifest=manifest)


def trained_models(models_dir: Path) -> list[dict[str, Any]]:
    """Every trained model's manifest summary, newest first, and whether it is the live one."""
    live = None
    try:
        live = json.loads((models_dir / LIVE).read_text()).get("version")
    except (OSError, ValueError, AttributeError):
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
