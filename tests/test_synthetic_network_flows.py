"""network_flows: determinism, rates, seasonality, the backup false alarm, headroom, scale, shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from aifkit.course.synthetic import network_flows, shards
from aifkit.course.synthetic.network_flows import BACKUP, FEATURES, WORKSTATION

DTYPES = {
    "features": np.float32,
    "label": np.uint8,
    "true_label": np.uint8,
    "attack_start": np.int16,
    "hour": np.uint8,
    "weekday": np.uint8,
    "host_role": np.uint8,
}


def f1_score(truth: np.ndarray, flagged: np.ndarray) -> float:
    """F1 of the attack class (flagged windows vs labelled attacks)."""
    hits = float((truth & flagged).sum())
    return 2.0 * hits / max(float(truth.sum() + flagged.sum()), 1.0)


BYTES_OUT, PACKETS = FEATURES.index("bytes_out_log10"), FEATURES.index("packets_log10")


@pytest.fixture(scope="module")
def train() -> dict[str, np.ndarray]:
    return network_flows.generate(20_000, seed=11)


@pytest.fixture(scope="module")
def held_out() -> dict[str, np.ndarray]:
    return network_flows.generate(20_000, seed=12)


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    first = network_flows.generate(500, seed=3)
    again = network_flows.generate(500, seed=3)
    other = network_flows.generate(500, seed=4)
    assert set(first) == set(DTYPES)
    for name, dtype in DTYPES.items():
        assert first[name].dtype == dtype, (name, first[name].dtype)
        assert np.array_equal(first[name], again[name]), name
    assert not np.array_equal(first["features"], other["features"])


def test_rates_ranges_and_label_noise(train: dict[str, np.ndarray]) -> None:
    features, truth, label = train["features"], train["true_label"], train["label"]
    assert features.shape == (20_000, 32, len(FEATURES))
    assert np.isfinite(features).all()
    attack_rate = float((truth > 0).mean())
    assert 0.016 < attack_rate < 0.024, f"attack rate {attack_rate:.4f}, expected ~0.02"
    assert set(np.unique(truth)) == {0, 1, 2, 3, 4}
    wrong_attacks = float((label[truth > 0] != truth[truth > 0]).mean())
    assert wrong_attacks < 0.08, f"{wrong_attacks:.3f} of attack labels wrong, expected ~0.03"
    assert 0 < (label != truth).sum() < 0.003 * len(label)
    start = train["attack_start"]
    assert ((start == -1) == (truth == 0)).all()
    assert start[truth > 0].min() >= 4 and start[truth > 0].max() <= 24
    shares = features[:, :, 8:11].sum(axis=2)
    assert np.allclose(shares, 1.0, atol=1e-4), "protocol shares must sum to 1"
    share_columns = features[:, :, [7, 8, 9, 10, 11]]
    assert share_columns.min() >= 0.0 and share_columns.max() <= 1.0
    flows = 10.0 ** features[:, :, 3] - 1.0
    assert (flows > 0.99).all()
    assert (features[:, :, 5] <= flows + 0.5).all() and (features[:, :, 6] <= flows + 0.5).all()
    assert train["hour"].max() <= 23 and train["weekday"].max() <= 6
    exfil_hour, exfil_day = train["hour"][truth == 4], train["weekday"][truth == 4]
    off_hours = (exfil_day >= 5) | (exfil_hour < 7) | (exfil_hour >= 19)
    assert off_hours.all(), "exfiltration windows start outside working hours"


def test_benign_volume_is_higher_by_day_than_by_night(train: dict[str, np.ndarray]) -> None:
    benign_ws = (train["true_label"] == 0) & (train["host_role"] == WORKSTATION)
    hour, weekday = train["hour"], train["weekday"]
    volume = (10.0 ** train["features"][:, :, BYTES_OUT].astype(np.float64)).mean(axis=1)
    log_volume = np.log10(volume)
    day = np.median(log_volume[benign_ws & (weekday < 5) & (hour >= 10) & (hour < 16)])
    night = np.median(log_volume[benign_ws & (hour < 5)])
    weekend = np.median(log_volume[benign_ws & (weekday >= 5) & (hour >= 10) & (hour < 16)])
    assert day - night > 0.8, f"median log10 bytes out, day {day:.2f} vs night {night:.2f}"
    assert day - weekend > 0.5, f"weekday {day:.2f} vs weekend {weekend:.2f}"


def _threshold_fit(data: dict[str, np.ndarray]) -> tuple[float, float]:
    """The per-minute thresholds on bytes out and packets with the best F1 on ``data``."""
    peak_bytes = data["features"][:, :, BYTES_OUT].max(axis=1)
    peak_packets = data["features"][:, :, PACKETS].max(axis=1)
    attack = data["label"] > 0
    best = (-1.0, 0.0, 0.0)
    for bytes_cut in np.arange(5.5, 9.6, 0.25):
        for packets_cut in np.arange(3.5, 7.1, 0.25):
            flagged = (peak_bytes > bytes_cut) | (peak_packets > packets_cut)
            score = float(f1_score(attack, flagged))
            best = max(best, (score, float(bytes_cut), float(packets_cut)))
    return best[1], best[2]


def _threshold_flags(data: dict[str, np.ndarray], cuts: tuple[float, float]) -> np.ndarray:
    return np.asarray(
        (data["features"][:, :, BYTES_OUT].max(axis=1) > cuts[0])
        | (data["features"][:, :, PACKETS].max(axis=1) > cuts[1])
    )


def _window_summaries(data: dict[str, np.ndarray]) -> np.ndarray:
    """Per window: each feature's max, min, std, end-minus-start; plus hour, weekday, role."""
    x = data["features"]
    quarter = x.shape[1] // 4
    change = x[:, -quarter:].mean(axis=1) - x[:, :quarter].mean(axis=1)
    context = np.stack([data["hour"], data["weekday"], data["host_role"]], axis=1)
    return np.hstack([x.max(axis=1), x.min(axis=1), x.std(axis=1), change, context])


def test_threshold_baseline_is_moderate_and_whole_window_model_beats_it(
    train: dict[str, np.ndarray], held_out: dict[str, np.ndarray]
) -> None:
    cuts = _threshold_fit(train)
    flagged = _threshold_flags(held_out, cuts)
    attack = held_out["label"] > 0
    baseline = float(f1_score(attack, flagged))
    assert 0.2 < baseline < 0.7, f"threshold baseline F1 {baseline:.3f} (cuts {cuts})"
    false_alarms = flagged & ~attack
    backup_share = float((held_out["host_role"][false_alarms] == BACKUP).mean())
    backup_windows = float((held_out["host_role"] == BACKUP).mean())
    assert backup_share > 5 * backup_windows, (
        f"{backup_share:.2f} of the threshold's false alarms are backup servers "
        f"({backup_windows:.3f} of windows)"
    )

    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0)
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core machine: slower, not faster
        model.fit(_window_summaries(train), train["label"] > 0)
        predicted = model.predict(_window_summaries(held_out)).astype(bool)
    better = f1_score(attack, predicted)
    assert better > baseline + 0.3, (
        f"whole-window model F1 {better:.3f} vs threshold {baseline:.3f}"
    )


def test_scale_one_shard_of_tens_of_millions_of_values() -> None:
    data = network_flows.generate(40_000, seed=5)
    assert data["features"].shape == (40_000, 32, 12)
    assert data["features"].size > 10**7
    for name, dtype in DTYPES.items():
        assert data[name].dtype == dtype and len(data[name]) == 40_000, name


def test_shards_round_trip(tmp_path: Path) -> None:
    data = network_flows.generate(250, seed=8, steps=16)
    assert data["features"].shape == (250, 16, 12)
    shards.write(data, tmp_path / "flows", rows_per_shard=100)
    back = shards.read(tmp_path / "flows")
    for name, values in data.items():
        assert back[name].dtype == values.dtype and np.array_equal(back[name], values), name
