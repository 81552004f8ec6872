"""The task of capstone f05-health-signals: AAMI heartbeat classes on patients never seen.

The data come from :mod:`aifkit.course.synthetic.ecg` (MIT-BIH-like beats, 48 patients per
seed). The split is **inter-patient** (de Chazal et al. 2004): every seed draws new patients,
so training, validation and the held-out grading set share no patient. The metric is the
**macro-averaged recall** (balanced accuracy) over the classes present in the true labels: the
mean of the per-class recalls, so the rare classes S, V, F and Q weigh as much as N (88 % of
the beats). The given baseline is a class-balanced logistic regression on the RR intervals and
a few amplitudes; :class:`BeatCNN` is a small 1-D convolutional network on the beat and on the
beat minus the patient's median beat, which the notebook and its training script share.

The data are synthetic; the folder helpers still keep them as health data on a shared
machine must be kept: in a folder of the project group only (no access for others).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from aifkit.course.capstone import Target
from aifkit.course.synthetic import ecg as synthetic

CLASS_NAMES: Final = synthetic.CLASS_NAMES
N_CLASSES: Final = len(CLASS_NAMES)
TRAIN_SEEDS: Final = (501, 502)  # two draws of 48 patients: 96 training patients
VALIDATION_SEED: Final = 511  # 48 other patients
R_INDEX: Final = 72  # the R peak's sample in a 180-sample window (2 * 180 // 5)
N_RR: Final = 5  # RR features per beat, see rr_features

#: Calibrated at cpu-tiny (12 000 training beats, 6 epochs) on 10 held-out pairs of seeds of 8 000 beats
#: (``generate_patients``): the reference CNN scored 0.86-0.95 (three training seeds), the given
#: baseline 0.58-0.83 (mean 0.73), a constant 0.2.
TARGET: Final = Target(metric="macro recall (balanced accuracy)", threshold=0.85, baseline=0.73)


def generate(n: int, *, seed: int, patient_seed: int | None = None) -> dict[str, np.ndarray]:
    """``n`` beats of 48 new patients (``seed`` draws the patients and the beats).

    With ``patient_seed``: new beats (``seed``) of the patients of that seed, the test set of a
    split by beat (intra-patient), the one this capstone warns against.
    """
    return synthetic.generate(n, seed=seed, patient_seed=patient_seed)


def generate_patients(n: int, *, seeds: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``n`` beats split evenly over ``seeds`` (48 patients each), joined; ``patient`` stays unique.

    Two seeds may reuse a pseudonym by chance, so each seed's ids are offset: seed ``k`` of the
    list adds ``k * 100_000`` (ids become int64).
    """
    parts = []
    for k, seed in enumerate(seeds):
        part = synthetic.generate(n // len(seeds) + (k < n % len(seeds)), seed=seed)
        part["patient"] = part["patient"].astype(np.int64) + k * 100_000
        parts.append(part)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Counts ``[true, predicted]`` (rows: the true class)."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if len(y_true) and (
        min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes
    ):
        raise ValueError(f"classes must be 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def per_class_recall(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES
) -> np.ndarray:
    """Recall (sensitivity) of each class; NaN for a class with no true beat."""
    counts = confusion(y_true, y_pred, n_classes)
    support = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall: np.ndarray = np.where(support > 0, np.diag(counts) / support, np.nan)
    return recall


def score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro recall: the mean recall over the classes present in ``y_true`` (the metric)."""
    recall = per_class_recall(y_true, y_pred)
    if np.isnan(recall).all():
        return float("nan")
    return float(np.nanmean(recall))


def rr_features(data: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 5) float32: rr_prev, rr_next, their ratio, and both relative to the patient's median RR.

    The patient's median needs no label: it is computed on the beats of each patient in
    ``data`` (the whole recording of a new patient is there when its beats are classified).
    """
    prev = data["rr_prev_s"].astype(np.float64)
    nxt = data["rr_next_s"].astype(np.float64)
    local = np.empty_like(prev)
    for pid in np.unique(data["patient"]):
        rows = data["patient"] == pid
        local[rows] = np.median(np.concatenate([prev[rows], nxt[rows]]))
    return np.stack([prev, nxt, prev / nxt, prev / local, nxt / local], axis=1).astype(np.float32)


def beat_inputs(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's inputs: waves (n, 2, samples / 2) and RR features (n, 5), float32.

    Channel 0 is the beat minus its own median (the baseline offset); channel 1 is that minus
    the patient's median beat, which is almost always an N beat: what makes a beat unusual
    *for this patient*, the key to new patients. RR features as :func:`rr_features`.
    """
    raw = data["beats"].astype(np.float32)
    beats = 0.5 * (raw[:, 0::2] + raw[:, 1::2])  # 180 Hz: a QRS still spans about 15 samples
    beats -= np.median(beats, axis=1, keepdims=True)
    typical = np.empty_like(beats)
    for pid in np.unique(data["patient"]):
        rows = data["patient"] == pid
        typical[rows] = np.median(beats[rows], axis=0)
    waves = np.stack([beats, beats - typical], axis=1)
    return waves, rr_features(data)


def _baseline_features(data: dict[str, np.ndarray]) -> np.ndarray:
    """RR intervals, their ratio, and the R peak's amplitude above the beat's median."""
    beats = data["beats"]
    r_peak = beats[:, R_INDEX] - np.median(beats, axis=1)
    return np.column_stack([rr_features(data)[:, :3], r_peak])


@dataclass
class Baseline:
    """The given baseline: a class-balanced logistic regression on RR intervals and amplitudes."""

    model: Any  # a fitted sklearn Pipeline

    def predict(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """The predicted class (0-4) of every beat of ``data``."""
        return np.asarray(self.model.predict(_baseline_features(data)), dtype=np.int64)


def train_baseline(train: dict[str, np.ndarray], *, seed: int = 0) -> Baseline:
    """Fit the given baseline on ``train`` (a dict from :func:`generate`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=300, random_state=seed),
    )
    model.fit(_baseline_features(train), train["label"])
    return Baseline(model)


def make_cnn(width: int = 8) -> Any:
    """A small 1-D CNN: three conv layers on the 2 wave channels, joined with the RR features."""
    import torch
    from torch import nn

    class BeatCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv1d(2, width, 7, stride=2, padding=3),
                nn.ReLU(),
                nn.Conv1d(width, 2 * width, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.Conv1d(2 * width, 2 * width, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.AdaptiveMaxPool1d(4),
                nn.Flatten(),
            )
            self.rr = nn.Sequential(nn.Linear(N_RR, width), nn.ReLU())
            self.head = nn.Sequential(
                nn.Linear(8 * width + width, 4 * width), nn.ReLU(), nn.Linear(4 * width, N_CLASSES)
            )

        def forward(self, waves: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
            rr = torch.log(rr.clamp_min(1e-3))  # ratios: log makes 0.5 and 2 symmetric
            return self.head(torch.cat([self.conv(waves), self.rr(rr)], dim=1))  # type: ignore[no-any-return]

    return BeatCNN()


def class_weights(labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over the classes present; 0 for an absent class)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(float)
    weights = np.where(
        counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0
    )
    present = weights > 0
    weights[present] /= weights[present].mean()
    return weights.astype(np.float32)


# --- data protection on a shared machine -----------------------------------------------------

PRIVATE_DIR_MODE: Final = 0o2770  # owner and project group rwx, setgid (files inherit the group)
UMASK: Final = 0o007  # new files: nothing for others


def private_folder(path: Path, *, group: str | None = None) -> Path:
    """Make ``path`` (and parents) a folder only its owner and ``group`` can enter; return it."""
    old = os.umask(UMASK)
    try:
        path.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old)
    if group is not None:
        os.chown(path, -1, _gid(group))
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def open_to_others(path: Path) -> list[Path]:
    """``path`` and every file or folder under it that others (not owner, not group) can access."""
    found = []
    for item in [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]:
        if stat.S_IMODE(item.lstat().st_mode) & 0o007:
            found.append(item)
    return found


def forward_flops(net: Any, waves: Any, rr: Any) -> int:
    """FLOPs (2 per multiply-add) of the Conv1d and Linear layers of one forward pass, per beat."""
    from torch import nn

    counted: list[int] = []

    def hook(module: Any, inputs: Any, output: Any) -> None:
        if isinstance(module, nn.Conv1d):
            per_output = module.in_channels // module.groups * module.kernel_size[0]
        else:
            per_output = module.in_features
        counted.append(2 * per_output * output[0].numel())

    layers = [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        net(waves[:1], rr[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sum(counted)
