"""IsolationForest detector: seeded training, quantile thresholds, explanations, hashed artifacts.

Scores are `-score_samples` (higher is more anomalous). Thresholds are quantiles of the
training scores, not `contamination`: "alert on the top 0.5% of normal-looking traffic" is a
budget an analyst can reason about. An explanation names the features furthest from the
training distribution (robust z: distance from the median in units of the IQR).

An artifact is plain arrays (`<version>.npz`, read with allow_pickle=False: loading it cannot
run code, whatever its bytes) plus a JSON manifest holding its SHA-256; `load` checks the hash
too, and the expected hash comes from the manifest the caller trusts (the promoted version), so
a swapped or edited artifact is refused. The trees are scikit-learn's IsolationForest exported
node by node (`ArrayForest`) and scored here with exactly its arithmetic (a test holds the
scores equal to scikit-learn's).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.ensemble import IsolationForest

from aiaudit.detectors.features import FEATURES
from aiaudit.detectors.severity import model_score, severity_for

# Share of training rows at or above each severity's threshold: what the model alone raises on
# traffic like its training window (the rules raise the known-bad patterns beside it).
DEFAULT_BUDGETS = {"medium": 0.002, "high": 0.0007, "critical": 0.0002}
ARTIFACT_FORMAT = 2  # 2: plain arrays (.npz); 1 was a pickle, no longer loaded
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ArtifactRefused(Exception):
    """The artifact's bytes do not match the hash it was promoted with, or its features differ.

    Outside pipeline/errors.py on purpose: detectors/ imports nothing of the pipeline (so models
    can be trained and studied in a notebook); pipeline/score/models.py translates it to
    ConfigError at the boundary."""


def check_version(version: str) -> str:
    """A model version names files: letters, digits, '.', '_' and '-' only (no paths)."""
    if not isinstance(version, str) or not VERSION_NAME.fullmatch(version):
        raise ArtifactRefused(f"model version {str(version)[:80]!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return version


@dataclass(frozen=True)
class ArrayForest:
    """An IsolationForest as arrays, per tree: children, split feature and threshold, and each
    node's path length (depth + c(samples at the node) - 1), as scikit-learn computes them."""

    left: tuple[np.ndarray, ...]
    right: tuple[np.ndarray, ...]
    feature: tuple[np.ndarray, ...]
    threshold: tuple[np.ndarray, ...]
    path_length: tuple[np.ndarray, ...]
    tree_features: tuple[np.ndarray, ...] | None  # the feature subset per tree, when it was subsampled
    denominator: float  # trees x c(max_samples)

    @classmethod
    def of(cls, forest: IsolationForest, n_features: int) -> "ArrayForest":
        trees = [e.tree_ for e in forest.estimators_]
        subsample = forest._max_features != n_features  # noqa: SLF001  # as scikit-learn's score_samples decides
        return cls(
            tuple(t.children_left.astype(np.int64) for t in trees), tuple(t.children_right.astype(np.int64) for t in trees),
            tuple(t.feature.astype(np.int64) for t in trees), tuple(t.threshold.astype(np.float64) for t in trees),
            tuple(np.asarray(d, np.float64) + np.asarray(a, np.float64) - 1.0
                  for d, a in zip(forest._decision_path_lengths, forest._average_path_length_per_tree)),  # noqa: SLF001
            tuple(np.asarray(f, np.int64) for f in forest.estimators_features_) if subsample else None,
            float(len(trees) * _average_path_length(forest._max_samples)))  # noqa: SLF001

    def _stacked(self) -> tuple[Any, ...]:
        """All trees in one node table, renumbered breadth first so that a node's right child
        directly follows its left one (the next node is left[node] + went_right), features mapped
        through each tree's subset. A leaf points at itself with an infinite threshold, so every row
        takes the same number of steps (the deepest tree's depth) without masks."""
        cached = self.__dict__.get("_stack")
        if cached is None:
            parts: list[tuple[np.ndarray, ...]] = []
            roots, base, depth = [], 0, 0
            for i in range(len(self.left)):
                left, right, feature = self.left[i], self.right[i], self.feature[i]
                if self.tree_features is not None:
                    feature = np.where(feature >= 0, self.tree_features[i][np.maximum(feature, 0)], feature)
                order, new_left, tree_depth = _breadth_first(left, right)
                new_id = np.empty(len(order), np.int64)
                new_id[order] = np.arange(len(order))
                is_leaf = left[order] == -1
                first_child = np.where(is_leaf, np.arange(len(order)), new_left) + base
                parts.append((first_child, np.where(is_leaf, 0, feature[order]),
                              np.where(is_leaf, np.inf, self.threshold[i][order]), self.path_length[i][order]))
                roots.append(base)
                base += len(order)
                depth = max(depth, tree_depth)
            first, feature_all, threshold_all, length_all = (np.concatenate(c) for c in zip(*parts))
            cached = (np.array(roots, np.int64), first, feature_all, threshold_all, length_all, depth)
            object.__setattr__(self, "_stack", cached)
        return cached

    def scores(self, X: np.ndarray) -> np.ndarray:
        """2^(-mean path length / c(max_samples)): higher is more anomalous (scikit-learn's -score_samples)."""
        X32 = np.asarray(X, dtype=np.float32)  # the trees compare float32 inputs, as scikit-learn's do
        if not np.isfinite(X32).all():
            raise ValueError("feature vectors must be finite")
        roots, first, feature, threshold, path_length, depth = self._stacked()
        node = np.broadcast_to(roots, (len(X32), len(roots))).copy()  # rows x trees, at each root
        flat = X32.reshape(-1).astype(np.float64)  # compared as float64, like float32 <= float64 in numpy
        row_start = (np.arange(len(X32), dtype=np.int64) * X32.shape[1])[:, None]
        for _ in range(depth):
            went_right = flat[row_start + feature[node]] > threshold[node]
            node = first[node] + went_right
        lengths = path_length[node]
        depths = np.zeros(len(X32))
        for i in range(len(roots)):  # tree by tree, as scikit-learn adds them (the same rounding)
            depths += lengths[:, i]
        if self.denominator == 0:
            return np.ones(len(X32))
        return 2 ** (-(depths / self.denominator))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(len(self.left)):
            for name in ("left", "right", "feature", "threshold", "path_length"):
                out[f"{name}_{i}"] = getattr(self, name)[i]
            if self.tree_features is not None:
                out[f"tree_features_{i}"] = self.tree_features[i]
        return out

    @classmethod
    def from_arrays(cls, data: Any, trees: int, subsample: bool, denominator: float) -> "ArrayForest":
        def each(name: str, dtype: type) -> tuple[np.ndarray, ...]:
            return tuple(np.asarray(data[f"{name}_{i}"], dtype=dtype) for i in range(trees))
        forest = cls(each("left", np.int64), each("right", np.int64), each("feature", np.int64),
                     each("threshold", np.float64), each("path_length", np.float64),
                     each("tree_features", np.int64) if subsample else None, float(denominator))
        for i in range(trees):  # a node index outside its tree would read other memory's meaning: refuse
            n = len(forest.left[i])
            if not (len(forest.right[i]) == len(forest.feature[i]) == len(forest.threshold[i])
                    == len(forest.path_length[i]) == n) or n == 0:
                raise ArtifactRefused(f"tree {i}: arrays of different lengths")
            for child in (forest.left[i], forest.right[i]):
                if ((child != -1) & ((child <= 0) | (child >= n))).any():
                    raise ArtifactRefused(f"tree {i}: a child index outside the tree")
        return forest


def _breadth_first(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(old node ids in breadth-first order with siblings adjacent, each one's new left-child id
    (-1 at leaves), the tree's depth). Node 0 is the root."""
    order, first_child, depth, level = [0], {}, 0, [0]
    while level:
        nxt = []
        for n in level:
            if left[n] != -1:
                first_child[n] = len(order)
                order += [int(left[n]), int(right[n])]
                nxt += [int(left[n]), int(right[n])]
        depth, level = depth + (1 if nxt else 0), nxt
    return np.array(order, np.int64), np.array([first_child.get(n, -1) for n in order], np.int64), depth


def _average_path_length(n: int) -> float:
    """c(n) of the isolation-forest paper, as scikit-learn's _average_path_length computes it."""
    from sklearn.ensemble._iforest import _average_path_length as sk

    return float(sk(np.array([n]))[0])


@dataclass
class Detector:
    version: str
    features: tuple[str, ...]
    forest: ArrayForest
    median: np.ndarray
    iqr: np.ndarray
    thresholds: dict[str, float]  # severity -> minimum score
    training: dict[str, Any] = field(default_factory=dict)  # window, rows, seed

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.forest.scores(np.asarray(X, dtype=np.float64))

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


class Scorer(Protocol):
    """What scoring needs of a model: a Detector, or RulesOnly before any model is promoted."""

    version: str
    thresholds: dict[str, float]

    def score(self, X: np.ndarray) -> np.ndarray: ...

    def explain(self, x: np.ndarray, top: int = 3) -> list[tuple[str, float]]: ...


class RulesOnly:
    """No model yet: every model score is 0 (no finding), the rules alone raise findings."""

    version = "rules-only"

    def __init__(self) -> None:
        self.thresholds = {"medium": 1.0, "high": 1.0, "critical": 1.0}

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X))

    def explain(self, x: np.ndarray, top: int = 3) -> list[tuple[str, float]]:
        return []


NEVER_ALONE = ("latency_log",)  # a vendor answering fast or slow is no finding by itself
LOW_RATE = ("rate_1m_vs_usual", "rate_1h_vs_usual")  # nor is an identity quieter than usual


def model_may_fire(explanation: list[tuple[str, float]]) -> bool:
    """Whether the model's finding has a reason beyond latency alone or a low rate alone: one of
    the features furthest from training (Detector.explain) is neither latency nor a rate below
    the usual."""
    return any(name not in NEVER_ALONE and not (name in LOW_RATE and z < 0) for name, z in explanation)


def model_on_scale(detector: Scorer, raw: float, x: np.ndarray, learning: bool) -> tuple[float, list[tuple[str, float]]]:
    """The model's score on the one scale and its explanation; 0 (no finding) for an identity in
    its learning period, and for a score whose reasons are latency alone or a low rate alone."""
    on_scale = model_score(raw, detector.thresholds)
    if severity_for(on_scale) is None:
        return on_scale, []
    explanation = detector.explain(x)
    if learning or not model_may_fire(explanation):
        return 0.0, []
    return on_scale, explanation


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
    budgets = budgets or DEFAULT_BUDGETS
    thresholds = {name: float(np.quantile(scores, 1 - share)) for name, share in budgets.items()}
    q1, median, q3 = np.percentile(X, [25, 50, 75], axis=0)
    iqr = np.where(q3 - q1 > 0, q3 - q1, np.maximum(np.std(X, axis=0), 1e-6))
    return Detector(check_version(version), FEATURES, ArrayForest.of(forest, X.shape[1]), median, iqr, thresholds,
                    {"window": list(window) if window else None, "rows": len(X), "seed": seed})


def save(detector: Detector, directory: Path) -> dict[str, Any]:
    """Write `<version>.npz` (arrays only) and `<version>.json` (the manifest with the SHA-256);
    returns the manifest."""
    check_version(detector.version)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    f = detector.forest
    np.savez(buf, median=detector.median, iqr=detector.iqr, **f.arrays())  # type: ignore[arg-type]  # numpy types **kwds against allow_pickle too
    data = buf.getvalue()
    manifest = {
        "format": ARTIFACT_FORMAT, "version": detector.version, "features": list(detector.features),
        "training": detector.training, "thresholds": detector.thresholds, "trees": len(f.left),
        "subsample": f.tree_features is not None, "denominator": f.denominator,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (directory / f"{detector.version}.npz").write_bytes(data)
    (directory / f"{detector.version}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load(directory: Path, version: str, *, expected_sha256: str, manifest: dict[str, Any] | None = None) -> Detector:
    """Load a version whose bytes hash to `expected_sha256` (arrays only: nothing in the file can
    run code). `manifest` defaults to the version's own. Raises ArtifactRefused otherwise."""
    check_version(version)
    try:
        data = (directory / f"{version}.npz").read_bytes()
        manifest = manifest if manifest is not None else json.loads((directory / f"{version}.json").read_text())
    except OSError as exc:
        raise ArtifactRefused(f"model {version}: {exc.strerror} ({directory})") from exc
    except ValueError as exc:
        raise ArtifactRefused(f"model {version}: its manifest is not JSON") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactRefused(f"model {version}: artifact SHA-256 {actual[:16]}… is not the promoted {expected_sha256[:16]}…")
    if manifest.get("format") != ARTIFACT_FORMAT or tuple(manifest.get("features", ())) != FEATURES:
        raise ArtifactRefused(f"model {version} is of another format or was trained on other features; retrain it")
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        forest = ArrayForest.from_arrays(arrays, int(manifest["trees"]), bool(manifest["subsample"]),
                                         float(manifest["denominator"]))
        median, iqr = np.asarray(arrays["median"], np.float64), np.asarray(arrays["iqr"], np.float64)
        thresholds = {k: float(manifest["thresholds"][k]) for k in ("medium", "high", "critical")}
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactRefused(f"model {version}: not a readable artifact ({type(exc).__name__}: {exc})") from exc
    if median.shape != (len(FEATURES),) or iqr.shape != (len(FEATURES),):
        raise ArtifactRefused(f"model {version}: statistics of the wrong shape")
    return Detector(version, FEATURES, forest, median, iqr, thresholds, dict(manifest.get("training") or {}))
