"""Capstone f03: intrusion detection on windows of per-host network-flow statistics.

The data is ``aifkit.course.synthetic.network_flows``: one host's 32 one-minute steps of 12 flow
statistics per window, with rare attacks (scans, brute force, floods, slow exfiltration) and
benign look-alikes (nightly backups, download bursts). A security operations centre (SOC) does
not grade a detector by F1 but by what it finds within the false alarms its analysts can triage:
the metric here is the **detection rate** (recall on true attacks) at the alert threshold that
gives at most :data:`ALARMS_PER_DAY` false alarms a day on :data:`HOSTS` hosts, each scored once
per window (:func:`windows_per_day`). That is a false-positive rate of :data:`FPR_BUDGET`.

:func:`make_set` generates a set (features made model-ready by :func:`model_inputs`);
:func:`score` computes the metric from a model's scores; :func:`train_baseline` trains the given
baseline, a logistic regression on one vector per window (the per-feature means and the context:
time order ignored); :data:`TARGET` is what a sequence model must reach on held-out traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aifkit.course.capstone import Target
from aifkit.course.synthetic import network_flows as flows

__all__ = [
    "ALARMS_PER_DAY",
    "CONTEXT",
    "FPR_BUDGET",
    "GENERATOR_OPTIONS",
    "HOSTS",
    "TARGET",
    "TRAIN_ATTACK_RATE",
    "WINDOW_MINUTES",
    "Baseline",
    "Standardizer",
    "alarms_per_day",
    "make_set",
    "model_inputs",
    "score",
    "threshold_at_fpr",
    "train_baseline",
    "windows_per_day",
]

Array = np.ndarray

WINDOW_MINUTES = 32  # the generator's default window: 32 one-minute steps
HOSTS = 1_000  # the monitored organisation: a mid-size company's workstations and servers
ALARMS_PER_DAY = 45.0  # what the SOC's analysts can triage in a day (about 10 min each)
# Generator options of every set: twice the default share of backup servers (more benign
# look-alikes of exfiltration); training sets are enriched in attacks (red-team exercises).
GENERATOR_OPTIONS: dict[str, Any] = {"backup_share": 0.08}
TRAIN_ATTACK_RATE = 0.10
CONTEXT: tuple[str, ...] = (
    "hour_sin",
    "hour_cos",
    "weekend",
    "workstation",
    "server",
    "backup_server",
)


def windows_per_day(hosts: int = HOSTS, window_minutes: int = WINDOW_MINUTES) -> float:
    """Windows the detector scores a day: each host once per (non-overlapping) window."""
    if hosts < 1 or window_minutes < 1:
        raise ValueError(f"hosts and window_minutes must be >= 1, not {hosts}, {window_minutes}")
    return hosts * flows.MINUTES_PER_DAY / window_minutes


def alarms_per_day(fpr: float, hosts: int = HOSTS, window_minutes: int = WINDOW_MINUTES) -> float:
    """False alarms a day at false-positive rate ``fpr`` (nearly every window is benign)."""
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], not {fpr}")
    return fpr * windows_per_day(hosts, window_minutes)


FPR_BUDGET = ALARMS_PER_DAY / windows_per_day()  # 45 / 45,000 = 1e-3

TARGET = Target(
    metric=f"detection rate at {ALARMS_PER_DAY:g} false alarms/day ({HOSTS:,} hosts)",
    threshold=0.90,
    baseline=0.81,
)


def model_inputs(data: dict[str, Array]) -> tuple[Array, Array]:
    """The model's inputs from a generated set: the sequence ``x`` and the window's context.

    ``x`` float32 (n, steps, 12): the generator's features, with the duration as log10 and the
    distinct port and host counts as log(1 + count) (heavy tails squeezed). ``context`` float32
    (n, 6): hour of day as sine and cosine, weekend (0/1) and the host role one-hot.
    """
    x = np.array(data["features"], dtype=np.float32)
    x[:, :, 4] = np.log10(x[:, :, 4])
    x[:, :, 5:7] = np.log1p(x[:, :, 5:7])
    angle = data["hour"].astype(np.float32) * np.float32(2 * np.pi / 24)
    weekend = (data["weekday"] >= 5).astype(np.float32)
    role = np.eye(3, dtype=np.float32)[data["host_role"]]
    context = np.column_stack([np.sin(angle), np.cos(angle), weekend, role]).astype(np.float32)
    return x, context


def make_set(n: int, seed: int, *, attack_rate: float = 0.02) -> dict[str, Array]:
    """``n`` windows from the generator: model inputs ``x``, ``context``, labels and truth.

    ``y`` (0/1 float32) is the recorded label, noisy as a SOC's labels are: train on it.
    ``is_attack`` (bool) is the simulation's truth: :func:`score` grades against it.
    ``true_label``, ``attack_start``, ``hour``, ``host_role`` come along for reading what a detector misses.
    """
    data = flows.generate(n, seed=seed, attack_rate=attack_rate, **GENERATOR_OPTIONS)
    x, context = model_inputs(data)
    return {
        "x": x,
        "context": context,
        "y": (data["label"] > 0).astype(np.float32),
        "is_attack": data["true_label"] > 0,
        "true_label": data["true_label"],
        "attack_start": data["attack_start"],
        "hour": data["hour"],
        "host_role": data["host_role"],
    }


def threshold_at_fpr(benign_scores: Array, fpr: float) -> float:
    """The alert threshold (alarm: score > threshold) with at most ``floor(fpr * n)`` alarms.

    The ``k+1``-th highest benign score, ``k = floor(fpr * n)``: exactly ``k`` benign scores
    lie above it when they are distinct, fewer when there are ties (never more).
    """
    scores = np.sort(np.asarray(benign_scores, dtype=np.float64).ravel())
    if scores.size == 0 or np.isnan(scores).any():
        raise ValueError("need at least one benign score, and no NaN")
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), not {fpr}")
    allowed = math.floor(fpr * scores.size + 1e-9)
    return float(scores[scores.size - allowed - 1])


def score(scores: Array, is_attack: Array, *, fpr: float = FPR_BUDGET) -> float:
    """Detection rate (recall on attack windows) at the threshold of :func:`threshold_at_fpr`.

    The threshold comes from the benign windows of the same set: what a SOC calibrates on a
    week of its own traffic. NaN scores count as no alarm on an attack and as an alarm on benign
    traffic (a broken model must not look good).
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(is_attack, dtype=bool).ravel()
    if values.shape != truth.shape:
        raise ValueError(f"{values.size} scores for {truth.size} windows")
    if truth.all() or not truth.any():
        raise ValueError("need both attack and benign windows")
    benign = np.where(np.isnan(values[~truth]), np.inf, values[~truth])
    threshold = threshold_at_fpr(benign, fpr) if np.isfinite(benign).any() else np.inf
    attacks = np.nan_to_num(values[truth], nan=-np.inf)
    return float(np.mean(attacks > threshold))


@dataclass
class Standardizer:
    """Per-feature mean and standard deviation of the training sequences (every step)."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array) -> Standardizer:
        flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
        return cls(
            flat.mean(axis=0).astype(np.float32), (flat.std(axis=0) + 1e-6).astype(np.float32)
        )

    def __call__(self, x: Array) -> Array:
        return np.asarray((x - self.mean) / self.std, dtype=np.float32)


@dataclass
class Baseline:
    """The given baseline: logistic regression on one vector per window (order of time ignored)."""

    scale: Standardizer
    weights: Array
    bias: float

    def features(self, x: Array, context: Array) -> Array:
        return np.column_stack([self.scale(x).mean(axis=1), context])

    def predict(self, x: Array, context: Array) -> Array:
        """A suspicion score per window (the log-odds of an attack)."""
        return np.asarray(self.features(x, context) @ self.weights + self.bias, dtype=np.float64)


def train_baseline(train: dict[str, Array], *, seed: int = 0, l2: float = 1e-4) -> Baseline:
    """Fit the baseline on ``train`` (``x``, ``context``, noisy ``y``): logistic regression.

    Newton's method on the mean log-loss plus ``l2`` times the squared weights (the intercept
    unpenalised); deterministic, so ``seed`` only keeps the signature of a trained model.
    """
    del seed
    scale = Standardizer.fit(train["x"])
    features = Baseline(scale, np.zeros(1), 0.0).features(train["x"], train["context"])
    design = np.column_stack([features.astype(np.float64), np.ones(len(features))])
    target = np.asarray(train["y"], dtype=np.float64)
    penalty = np.full(design.shape[1], 2.0 * l2)
    penalty[-1] = 0.0
    theta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -30.0, 30.0)))
        gradient = design.T @ (p - target) / len(target) + penalty * theta
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design / len(target) + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Baseline(scale, theta[:-1], float(theta[-1]))
