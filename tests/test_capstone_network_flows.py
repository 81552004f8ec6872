"""Capstone f03 (intrusion detection): the task module, and the target's calibration.

The given baseline, a constant detector and a detector that memorised the visible validation
set miss ``TARGET`` on held-out traffic (seeds the notebook never uses); the hidden test's
literal threshold is ``TARGET.threshold``; the metric and its helpers on small cases.
"""

from __future__ import annotations

import math
import re

import nbformat
import numpy as np
import pytest
from builders import COURSES

from aifkit.course.capstone import network_flows as task

NOTEBOOK = COURSES / "f03-cybersecurity-intrusion" / "f03-cybersecurity-intrusion.ipynb"
HELD_OUT_SEEDS = (11, 12, 13)  # calibration seeds; the notebook's hidden seed is another
HELD_OUT_N = 20_000  # the hidden test uses 30,000: 20,000 keep this module short


def _cell(grade_id: str) -> str:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    found = [
        c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    ]
    assert len(found) == 1, f"cell {grade_id!r} appears {len(found)} times"
    return found[0]


@pytest.fixture(scope="module")
def train() -> dict[str, np.ndarray]:
    return task.make_set(10_000, seed=301, attack_rate=task.TRAIN_ATTACK_RATE)  # the notebook's


@pytest.fixture(scope="module")
def val() -> dict[str, np.ndarray]:
    return task.make_set(20_000, seed=302)  # the notebook's


@pytest.fixture(scope="module")
def held_out() -> list[dict[str, np.ndarray]]:
    return [task.make_set(HELD_OUT_N, seed=seed) for seed in HELD_OUT_SEEDS]


def test_hidden_threshold_is_the_target() -> None:
    """The held-out test asserts the literal TARGET.threshold, on a seed used nowhere else."""
    source = _cell("f03-model-held-out")
    hidden = source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
    literals = re.findall(r"held_model >= ([0-9.]+)", hidden)
    assert literals and all(float(v) == task.TARGET.threshold for v in literals), literals
    (seed,) = re.findall(r"make_set\(30_000, seed=([0-9_]+)\)", hidden)
    nb_text = NOTEBOOK.read_text(encoding="utf-8")
    assert nb_text.count(seed) == 1, "the held-out seed must appear only in the hidden test"
    assert int(seed) not in (*HELD_OUT_SEEDS, 301, 302)


def test_baseline_code_in_metadata_is_the_given_baseline() -> None:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    meta = nb.metadata["aifkit"]["capstone"]
    assert meta["held_out"] == ["f03-model-held-out"]
    assert "task.train_baseline(train" in meta["baseline"]["f03-train-model"]


def test_baseline_constant_and_memoriser_miss_the_target(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    held_out: list[dict[str, np.ndarray]],
) -> None:
    baseline = task.train_baseline(train)
    assert task.score(baseline.predict(val["x"], val["context"]), val["is_attack"]) < 0.86
    memory = {
        row.tobytes(): float(flag) for row, flag in zip(val["x"], val["is_attack"], strict=True)
    }
    for held in held_out:
        scores = baseline.predict(held["x"], held["context"])
        base = task.score(scores, held["is_attack"])
        assert not task.TARGET.met(base), f"the baseline reaches {base:.3f}"
        assert base < task.TARGET.threshold - 0.05, f"the baseline is too close: {base:.3f}"
        assert abs(base - float(task.TARGET.baseline or 0)) < 0.04, base
        constant = task.score(np.full(len(scores), 0.5), held["is_attack"])
        assert constant == 0.0
        memorised = np.array([memory.get(row.tobytes(), 0.0) for row in held["x"]])
        assert not task.TARGET.met(task.score(memorised, held["is_attack"]))


def test_windows_and_alarms_per_day() -> None:
    assert task.windows_per_day() == 45_000
    assert task.windows_per_day(10, 60) == 240
    assert math.isclose(task.FPR_BUDGET, 1e-3)
    assert math.isclose(task.alarms_per_day(task.FPR_BUDGET), task.ALARMS_PER_DAY)
    with pytest.raises(ValueError):
        task.windows_per_day(0)
    with pytest.raises(ValueError):
        task.alarms_per_day(1.5)


def test_threshold_at_fpr() -> None:
    scores = [0.1, 0.4, 0.2, 0.9, 0.3]
    assert task.threshold_at_fpr(scores, 0.4) == 0.3
    assert task.threshold_at_fpr(scores, 0.0) == 0.9
    assert task.threshold_at_fpr([5.0, 5.0, 5.0, 1.0], 0.5) == 5.0
    with pytest.raises(ValueError):
        task.threshold_at_fpr([], 0.1)
    with pytest.raises(ValueError):
        task.threshold_at_fpr([0.1, float("nan")], 0.1)


def test_score_small_cases() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1], dtype=bool)
    # benign 0.1..0.4; fpr 0.25 allows 1 alarm: threshold 0.3; attacks 0.35 (found), 0.2 (missed)
    assert task.score([0.1, 0.2, 0.3, 0.4, 0.35, 0.2], truth, fpr=0.25) == 0.5
    assert task.score([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], truth, fpr=0.0) == 1.0
    assert task.score(np.ones(6), truth) == 0.0  # a constant finds nothing
    assert task.score([0.1, 0.2, 0.3, float("nan"), 0.5, 0.6], truth, fpr=0.0) == 0.0  # NaN alarms
    assert task.score([0.1, 0.2, 0.3, 0.4, float("nan"), 0.6], truth, fpr=0.0) == 0.5
    with pytest.raises(ValueError):
        task.score([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        task.score([0.1, 0.2, 0.3], [True, False])


def test_make_set_fields() -> None:
    data = task.make_set(200, seed=5)
    assert data["x"].shape == (200, task.WINDOW_MINUTES, 12) and data["x"].dtype == np.float32
    assert data["context"].shape == (200, len(task.CONTEXT))
    assert np.isfinite(data["x"]).all() and np.isfinite(data["context"]).all()
    assert set(np.unique(data["y"])) <= {0.0, 1.0}
    assert (data["is_attack"] == (data["true_label"] > 0)).all()
    again = task.make_set(200, seed=5)
    assert np.array_equal(data["x"], again["x"])
