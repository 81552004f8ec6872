"""Capstone f04 (PV forecasting): the task module, and the target calibrated on held-out seeds.

The reference solution is the notebook's own answer cell; the given baseline, a constant and a
model that memorised the visible validation set must miss the target on every held-out seed,
the reference must meet it with margin. The hidden test's literal threshold is TARGET's.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import numpy as np
import pytest
import torch

from aifkit.course.capstone import energy
from aifkit.course.synthetic import shards

NOTEBOOK = (
    Path(__file__).resolve().parents[1]
    / "courses/f04-green-energy-forecasting/f04-green-energy-forecasting.ipynb"
)
MARGIN = 0.5  # nMAE points between the target and the reference or the baseline
CPU_TINY = {"max_rows": 40_000, "epochs": 4, "batch": 512}  # the notebook's cpu-tiny sizes
HELD_OUT_SITES = 16


def _cell(grade_id: str) -> str:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return str(cell.source)
    raise AssertionError(f"no cell {grade_id!r} in {NOTEBOOK.name}")


def _hidden(grade_id: str) -> str:
    source = _cell(grade_id)
    return source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]


def _secret_seed() -> int:
    found = re.findall(r"make_data\(\s*16,\s*seed=(\d+)\)", _hidden("f04-model-tests"))
    assert len(found) == 1, "the hidden test generates one held-out set with a literal seed"
    return int(found[0])


def _visible_seeds() -> tuple[int, int]:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    match = re.search(r"TRAIN_SEED, VAL_SEED = (\d+), (\d+)", text)
    assert match
    return int(match.group(1)), int(match.group(2))


def _reference_train_model() -> Any:
    """The notebook's solution cell, run with the notebook's cpu-tiny sizes."""
    namespace: dict[str, Any] = {
        "np": np,
        "torch": torch,
        "energy": energy,
        "SIZES": CPU_TINY,
        "DEVICE": "cpu",
    }
    exec(_cell("f04-train-model"), namespace)  # the instructor's source, not a learner's
    return namespace["train_model"]


# --- the graded target -------------------------------------------------------------------


def test_target_is_lower_is_better_nmae() -> None:
    assert energy.TARGET.higher_is_better is False
    assert "nMAE" in energy.TARGET.metric
    assert energy.TARGET.baseline is not None
    assert energy.TARGET.baseline > energy.TARGET.threshold + MARGIN


def test_hidden_threshold_is_the_literal_target() -> None:
    hidden = _hidden("f04-model-tests")
    literals = re.findall(r"held_score <= ([0-9.]+)", hidden)
    assert literals and all(float(v) == energy.TARGET.threshold for v in literals), literals
    assert "TARGET" not in hidden, (
        "the learner's kernel can change module attributes: write it literally"
    )


def test_secret_seed_appears_only_in_the_hidden_test() -> None:
    seed = _secret_seed()
    assert seed not in _visible_seeds()
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    holders = [c for c in nb.cells if str(seed) in c.source]
    assert len(holders) == 1 and holders[0].metadata["nbgrader"]["grade_id"] == "f04-model-tests"


@pytest.fixture(scope="module")
def calibration() -> dict[str, list[float]]:
    """Scores (nMAE) of four models on five held-out seeds: the secret one and four more."""
    train_seed, val_seed = _visible_seeds()
    train = energy.windows(energy.make_data(40, seed=train_seed))
    val = energy.windows(energy.make_data(16, seed=val_seed))
    torch.set_num_threads(1)
    reference = _reference_train_model()(train, seed=0)
    baseline = energy.train_baseline(train)
    level = float(np.median(train.y))
    constant = SimpleNamespace(predict=lambda X: np.full(len(X), level))
    memoriser = SimpleNamespace(predict=lambda X: np.resize(val.y, len(X)))
    models = {
        "reference": reference,
        "baseline": baseline,
        "constant": constant,
        "memoriser": memoriser,
    }
    secret = _secret_seed()
    seeds = [secret] + [secret + k for k in (1, 2, 3, 4)]
    scores: dict[str, list[float]] = {name: [] for name in models}
    for seed in seeds:
        held = energy.windows(energy.make_data(HELD_OUT_SITES, seed=seed))
        for name, model in models.items():
            scores[name].append(energy.score(model, held))
    return scores


def test_reference_meets_the_target_with_margin(calibration: dict[str, list[float]]) -> None:
    worst = max(calibration["reference"])
    assert worst <= energy.TARGET.threshold - MARGIN, calibration["reference"]


@pytest.mark.parametrize("name", ["baseline", "constant", "memoriser"])
def test_others_miss_the_target(calibration: dict[str, list[float]], name: str) -> None:
    assert not any(energy.TARGET.met(s) for s in calibration[name]), calibration[name]
    assert min(calibration[name]) >= energy.TARGET.threshold + MARGIN, calibration[name]


def test_stated_baseline_matches_calibration(calibration: dict[str, list[float]]) -> None:
    assert energy.TARGET.baseline is not None
    assert abs(float(np.mean(calibration["baseline"])) - energy.TARGET.baseline) < 1.0


# --- the task module on small cases -------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[dict[str, np.ndarray], energy.Windows]:
    data = energy.make_data(3, seed=5, hours=24 * 10)
    return data, energy.windows(data)


def test_windows_rows_and_features(small: tuple[dict[str, np.ndarray], energy.Windows]) -> None:
    data, w = small
    assert w.X.shape == (len(w), len(energy.FEATURES)) and w.X.dtype == np.float32
    assert len(w) > 0 and w.hour.min() >= energy.HORIZON_H + energy.HISTORY_H - 1
    cap = data["capacity_kw"][w.site]
    assert np.allclose(w.y, data["power_kw"][w.site, w.hour] / cap, atol=1e-6)
    yesterday = data["power_kw"][w.site, w.hour - 24] / cap
    assert np.allclose(w.X[:, energy.PERSISTENCE_COLUMN], yesterday, atol=1e-6)
    assert np.all(data["clear_sky_kw"][w.site, w.hour] > 0), "daylight rows only"
    share = energy.windows(data, sites=[1])
    assert set(share.site.tolist()) == {1}
    assert np.array_equal(share.y, w.y[w.site == 1])
    with pytest.raises(ValueError):
        energy.windows(energy.make_data(1, seed=0, hours=30))


def test_metrics_on_small_cases() -> None:
    y = np.array([0.5, 0.2, 0.05])
    assert energy.nmae(np.array([0.4, 0.3, 0.05]), y) == pytest.approx(100 * 0.2 / 3)
    assert energy.mape(np.array([0.4, 0.3, 0.0]), y) == pytest.approx(100 * (0.2 + 0.5) / 2)
    assert math.isnan(energy.mape(np.zeros(3), np.zeros(3)))
    q = np.array([[0.0, 0.5, 1.0]])
    expected = 100 * (0.1 * 0.5 + 0.0 + 0.1 * 0.5) / 3
    assert energy.mean_pinball(q, np.array([0.5])) == pytest.approx(expected)


def test_median_column_and_score(small: tuple[dict[str, np.ndarray], energy.Windows]) -> None:
    _, w = small
    n = len(w)
    assert np.array_equal(energy.median_column(np.ones((n, 3)) * [0, 1, 2], n), np.ones(n))
    with pytest.raises(ValueError):
        energy.median_column(np.zeros((n, 2)), n)
    perfect = SimpleNamespace(predict=lambda X: w.y)
    assert energy.score(perfect, w) == 0.0
    broken = SimpleNamespace(predict=lambda X: np.full(len(X), np.nan))
    assert math.isnan(energy.score(broken, w)) and not energy.TARGET.met(energy.score(broken, w))


def test_baseline_is_persistence(small: tuple[dict[str, np.ndarray], energy.Windows]) -> None:
    _, w = small
    model = energy.train_baseline(w)
    q = model.predict(w.X)
    assert q.shape == (len(w), 3) and np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
    assert np.allclose(q[:, 1], np.clip(w.X[:, energy.PERSISTENCE_COLUMN], 0, 1))
    found = energy.evaluate(model, w)
    assert set(found) == {"nmae", "mape", "pinball", "coverage_p10_p90"}


def test_portfolio_errors_cancel() -> None:
    w = energy.Windows(
        X=np.zeros((4, len(energy.FEATURES)), dtype=np.float32),
        y=np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32),
        site=np.array([0, 1, 0, 1]),
        hour=np.array([10, 10, 11, 11]),
        capacity_kw=np.array([10.0, 10.0, 10.0, 10.0], dtype=np.float32),
    )
    found = energy.portfolio_errors(np.array([0.6, 0.4, 0.7, 0.5]), w)
    assert found["site_mae"] == pytest.approx((1 + 1 + 2) / 2 / 20)
    assert found["shortfall"] == pytest.approx(2 / 2 / 20), "hour 10 cancels, hour 11 is 2 kW short"
    assert found["surplus"] == 0.0


# --- the training script of the notebook's job ---------------------------------------------


def _train_script() -> str:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "TRAIN_SCRIPT = " not in cell.source:
            continue
        for node in ast.parse(cell.source).body:
            if (
                isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", "") == "TRAIN_SCRIPT"
            ):
                return str(ast.literal_eval(node.value))
    raise AssertionError("no TRAIN_SCRIPT in the notebook")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_script_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """A requeued job finds checkpoint.pt after epoch 1: it trains epoch 2 only, saves atomically.

    One process (a world of 1, without torchrun) keeps the test short.
    """
    script = tmp_path / "train_pv.py"
    script.write_text(_train_script())
    data = energy.make_data(4, seed=3, hours=24 * 20)
    shards.write(data, tmp_path / "train", 2)
    shards.write(data, tmp_path / "val", 2)
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(len(energy.FEATURES), 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, len(energy.QUANTILES)),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1}
    torch.save({**state, "history": [0.5]}, run / "checkpoint.pt")  # as if epoch 1 had run
    src = str(Path(energy.__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": src, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    command = [
        sys.executable,
        str(script),
        str(tmp_path / "train"),
        str(tmp_path / "val"),
        str(run),
    ]
    command += ["--rows", "1000", "--batch", "200", "--epochs", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout and "epoch 2:" in done.stdout and "epoch 1:" not in done.stdout
    result = json.loads((run / "result.json").read_text())
    assert result["resumed_after"] == 1 and result["loss_history"][0] == 0.5
    assert len(result["loss_history"]) == 2 and result["samples_per_s"] > 0
    assert math.isfinite(result["val_nmae"]) and math.isfinite(result["val_pinball"])
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and not list(run.glob(".ckpt-*")), "atomic: no temporary file left"
