"""IsolationForest detector: seeded training, quantile thresholds, explanations, hashed artifacts.

Scores are `-score_samples` (higher is more anomalous). Thresholds are quantiles of the
training scores, not `contamination`: "alert on the top 0.5% of normal-looking traffic" is a
budget an analyst can reason about. An explanation names the features furthest from the
training distribution (robust z: distance from the median in units of the IQR).

An artifact is a pickle plus a JSON manifest holding its SHA-256; `load` checks the hash
before unpickling, and the expected hash comes from the manifest the caller trusts (the
promoted version), so a swapped or edited artifact is refused, never executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from detectors.features import FEATURES

ARTIFACT_FORMAT = 1


class ArtifactRefused(Exception):
    """The artifact's bytes do not match the hash it was promoted with, or its features differ.

    Outside pipeline/errors.py on purpose: detectors/ imports nothing of the pipeline (so models
    can be trained and studied in a notebook); pipeline/score/models.py translates it to
    ConfigError at the boundary."""


@dataclass
class Detector:
    version: str
    features: tuple[str, ...]
    forest: IsolationForest
    median: np.ndarray
    iqr: np.ndarray
    thresholds: dict[str, float]  # severity -> minimum score
    training: dict[str, Any] = field(default_factory=dict)  # window, rows, seed

    def score(self, X: np.ndarray) -> np.ndarray:
        return -self.forest.score_samples(np.asarray(X, dtype=np.float64))

    def severity(self, score: float) -> str | None:
        """The highest severity whose threshold the score reaches, or None (no alert)."""
        for name in ("critical", "high", "medium"):
            if score >= self.thresholds[name]:
                return name
        return None

    def explain(self, x: np.ndarray, top: int = 3) -> list[tuple[str, float]]:
        """The `top` features furthest from the training distribution, with their robust z."""
        z = (np.asarray(x, dtype=np.float64) - self.median) / self.iqr
        order = np.argsort(-np.abs(z))[:top]
        return [(self.features[i], round(float(z[i]), 2)) for i in order if abs(z[i]) > 0]


def train(X: np.ndarray, *, version: str, seed: int, window: tuple[str, str] | None = None,
          n_estimators: int = 200, budgets: dict[str, float] | None = None) -> Detector:
    """Fit on (mostly normal) traffic. `budgets` maps severity -> share of training rows above it."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES) or len(X) < 50:
        raise ValueError(f"training needs at least 50 rows of {len(FEATURES)} features, got {X.shape}")
    # Larger subsamples than the default 256, so trees see the rare harmless values (a link, a late
    # hour) and can split on those features at all.
    forest = IsolationForest(n_estimators=n_estimators, max_samples=min(len(X), 2048), random_state=seed, n_jobs=1).fit(X)
    scores = -forest.score_samples(X)
    budgets = budgets or {"medium": 0.01, "high": 0.003, "critical": 0.0005}
    thresholds = {name: float(np.quantile(scores, 1 - share)) for name, share in budgets.items()}
    q1, median, q3 = np.percentile(X, [25, 50, 75], axis=0)
    iqr = np.where(q3 - q1 > 0, q3 - q1, np.maximum(np.std(X, axis=0), 1e-6))
    return Detector(version, FEATURES, forest, median, iqr, thresholds,
                    {"window": list(window) if window else None, "rows": len(X), "seed": seed})


def save(detector: Detector, directory: Path) -> dict[str, Any]:
    """Write `<version>.pkl` and `<version>.json` (the manifest with the SHA-256); returns the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pickle.dump(detector, buf, protocol=5)
    data = buf.getvalue()
    manifest = {
        "format": ARTIFACT_FORMAT, "version": detector.version, "features": list(detector.features),
        "training": detector.training, "thresholds": detector.thresholds, "sha256": hashlib.sha256(data).hexdigest(),
    }
    (directory / f"{detector.version}.pkl").write_bytes(data)
    (directory / f"{detector.version}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load(directory: Path, version: str, *, expected_sha256: str) -> Detector:
    """Load a version whose bytes hash to `expected_sha256`. Raises ArtifactRefused otherwise."""
    data = (directory / f"{version}.pkl").read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactRefused(f"model {version}: artifact SHA-256 {actual[:16]}… is not the promoted {expected_sha256[:16]}…")
    detector = pickle.loads(data)  # noqa: S301  # only after the hash matched the promoted one
    if tuple(detector.features) != FEATURES:
        raise ArtifactRefused(f"model {version} was trained on other features; retrain it")
    return detector
