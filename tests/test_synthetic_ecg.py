"""The ECG heartbeat generator: determinism, MIT-BIH-like statistics, learnability, scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from aifkit.course.synthetic import ecg, shards

FIELDS = {
    "beats": np.float32,
    "label": np.uint8,
    "rr_prev_s": np.float32,
    "rr_next_s": np.float32,
    "patient": np.int16,
    "noise_level": np.float32,
}
SHARD_BEATS = 200_000  # the per-shard size at the GPU tiers (3.6e7 values, 144 MB)
PRE = 72  # R peak's sample in a 180-sample window


@pytest.fixture(scope="module")
def shard() -> dict[str, np.ndarray]:
    """One GPU-tier shard, with the true labels."""
    return ecg.generate(SHARD_BEATS, seed=11, with_clean_label=True)


@pytest.fixture(scope="module")
def clean_pair() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same beats without and with noise."""
    return ecg.generate(20_000, seed=3, noise_scale=0.0), ecg.generate(20_000, seed=3)


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    first, again, other = (ecg.generate(3000, seed=s) for s in (5, 5, 6))
    assert set(first) == set(FIELDS)
    for name, dtype in FIELDS.items():
        assert first[name].dtype == dtype, f"{name}: {first[name].dtype}"
        assert again[name].dtype == dtype
        assert np.array_equal(first[name], again[name]), f"{name} differs for the same seed"
    assert not np.array_equal(first["beats"], other["beats"])
    assert not np.array_equal(first["rr_prev_s"], other["rr_prev_s"])


def test_shard_shapes_dtypes_and_physical_ranges(shard: dict[str, np.ndarray]) -> None:
    n = SHARD_BEATS
    assert shard["beats"].shape == (n, 180)
    for name, dtype in FIELDS.items():
        assert shard[name].dtype == dtype and len(shard[name]) == n, name
    assert np.isfinite(shard["beats"]).all()
    low, high = np.percentile(shard["beats"], [0.01, 99.99])
    assert low > -6.0 and high < 6.0, f"beats outside +-6 mV: {low:.2f} {high:.2f}"
    for name in ("rr_prev_s", "rr_next_s"):
        rr = shard[name]
        assert rr.min() > 0.2 and rr.max() < 3.0, f"{name}: {rr.min():.3f}-{rr.max():.3f} s"
    assert len(np.unique(shard["patient"])) == 48
    level = np.median(shard["noise_level"])
    assert 0.02 < level < 0.3, f"median noise RMS {level:.3f} mV"


def test_class_rates_and_label_noise(shard: dict[str, np.ndarray]) -> None:
    clean = np.bincount(shard["label_clean"], minlength=5) / SHARD_BEATS
    expected = np.array(ecg.DEFAULT_CLASS_RATES)
    assert np.allclose(clean, expected, atol=0.003), f"class rates {np.round(clean, 4)}"
    assert clean[0] > 0.85 and clean[4] < 0.01
    wrong = shard["label"] != shard["label_clean"]
    assert 0.002 < wrong.mean() < 0.004, f"label noise {wrong.mean():.4f}, stated 0.003"
    assert np.array_equal(shard["label"][wrong], ecg.CONFUSED_WITH[shard["label_clean"][wrong]])


def test_rr_intervals_of_ectopic_beats(shard: dict[str, np.ndarray]) -> None:
    label = shard["label_clean"]
    prev, nxt = shard["rr_prev_s"], shard["rr_next_s"]
    med = {c: (np.median(prev[label == c]), np.median(nxt[label == c])) for c in range(5)}
    n_prev, n_next = med[0]
    assert med[1][0] < 0.8 * n_prev, f"S rr_prev {med[1][0]:.3f} vs N {n_prev:.3f}"
    assert med[2][0] < 0.85 * n_prev, f"V rr_prev {med[2][0]:.3f} vs N {n_prev:.3f}"
    assert med[2][1] > 1.2 * n_next, f"V rr_next {med[2][1]:.3f} vs N {n_next:.3f}"
    assert abs(med[1][1] - n_next) < 0.1 * n_next, f"S rr_next {med[1][1]:.3f} (no pause)"
    # compensatory pause: rr_prev + rr_next is two of the patient's RR for V, less for S
    patient = shard["patient"]
    ids, index = np.unique(patient, return_inverse=True)
    sinus_rr = np.array([np.median(prev[patient == p]) for p in ids])  # mostly N beats
    pair = (prev + nxt) / (2 * sinus_rr[index])
    pause_v, pause_s = (float(np.median(pair[label == c])) for c in (2, 1))
    assert pause_v > 0.95 and pause_s < 0.92, (
        f"(rr_prev+rr_next)/2RR V {pause_v:.2f} S {pause_s:.2f}"
    )


def _qrs_width_ms(beats: np.ndarray) -> np.ndarray:
    """Width (ms) of the main QRS deflection at half its height, in +-30 samples of the R peak."""
    near = beats[:, PRE - 30 : PRE + 31]
    peak = near[np.arange(len(near)), np.argmax(np.abs(near[:, 15:46]), axis=1) + 15]
    above = np.sign(peak)[:, None] * near >= 0.5 * np.abs(peak)[:, None]
    samples: np.ndarray = above.sum(axis=1) * (1000.0 / 360.0)
    return samples


def test_ventricular_beats_have_wide_qrs(clean_pair: tuple[dict[str, np.ndarray], ...]) -> None:
    clean = clean_pair[0]
    width = _qrs_width_ms(clean["beats"])
    label = clean["label"]
    n, s, v = (float(np.median(width[label == c])) for c in (0, 1, 2))
    assert 20 < n < 60, f"N QRS half-height width {n:.0f} ms"
    assert abs(s - n) < 15, f"S QRS {s:.0f} ms should be narrow like N {n:.0f} ms"
    assert v > 1.8 * n, f"V QRS {v:.0f} ms not clearly wider than N {n:.0f} ms"


def test_noise_level_is_the_rms_of_the_added_noise(
    clean_pair: tuple[dict[str, np.ndarray], ...],
) -> None:
    clean, noisy = clean_pair
    assert np.array_equal(clean["label"], noisy["label"])
    assert not clean["noise_level"].any()
    noise = noisy["beats"] - clean["beats"]
    rms = np.sqrt(np.mean(np.square(noise), axis=1))
    assert np.allclose(rms, noisy["noise_level"], rtol=1e-3, atol=1e-5)
    # 50 Hz powerline: bin 25 of a 180-sample window at 360 Hz stands out of the EMG floor
    power = np.mean(np.abs(np.fft.rfft(noise - noise.mean(axis=1, keepdims=True))) ** 2, axis=0)
    floor = np.median(power[15:60])
    assert power[25] > 3 * floor, f"50 Hz power {power[25]:.3g} vs floor {floor:.3g}"
    # baseline wander dominates the lowest bins
    assert power[1] > 3 * floor, f"wander power {power[1]:.3g} vs floor {floor:.3g}"


def test_patients_differ(clean_pair: tuple[dict[str, np.ndarray], ...]) -> None:
    clean = clean_pair[0]
    normal = clean["label"] == 0
    patient, r_peak = clean["patient"][normal], clean["beats"][normal, PRE]
    ids = np.unique(patient)
    r_means = np.array([r_peak[patient == p].mean() for p in ids])
    r_within = np.mean([r_peak[patient == p].std() for p in ids])
    assert r_means.std() > 3 * r_within, f"R peak sd {r_means.std():.3f}, within {r_within:.3f}"
    rr = clean["rr_prev_s"][normal]
    rr_means = np.array([np.median(rr[patient == p]) for p in ids])
    assert rr_means.max() - rr_means.min() > 0.3, f"RR {rr_means.min():.2f}-{rr_means.max():.2f} s"


def _rr_features(data: dict[str, np.ndarray]) -> np.ndarray:
    prev, nxt = data["rr_prev_s"], data["rr_next_s"]
    return np.column_stack([prev, nxt, prev / nxt])


def _wave_features(data: dict[str, np.ndarray]) -> np.ndarray:
    """The beat, baseline removed, averaged over 9 samples (25 ms), and the RR features."""
    beats = data["beats"] - np.median(data["beats"], axis=1, keepdims=True)
    return np.column_stack([beats.reshape(len(beats), 20, 9).mean(axis=2), _rr_features(data)])


def test_rr_baseline_is_moderate_and_the_waveform_beats_it_on_other_patients() -> None:
    train, test = ecg.generate(12_000, seed=0), ecg.generate(12_000, seed=1)
    same_patients = ecg.generate(6000, seed=2, patient_seed=0)
    assert set(np.unique(same_patients["patient"])) <= set(np.unique(train["patient"]))
    assert len(set(np.unique(test["patient"])) & set(np.unique(train["patient"]))) <= 2
    with threadpool_limits(1):
        baseline = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=500)
        ).fit(_rr_features(train), train["label"])
        rr_pred = baseline.predict(_rr_features(test))
        model = HistGradientBoostingClassifier(
            max_iter=20, max_bins=63, class_weight="balanced", early_stopping=False, random_state=0
        ).fit(_wave_features(train), train["label"])
        wave_pred = model.predict(_wave_features(test))
        seen_pred = model.predict(_wave_features(same_patients))
    bacc_rr = balanced_accuracy_score(test["label"], rr_pred)
    bacc_wave = balanced_accuracy_score(test["label"], wave_pred)
    bacc_seen = balanced_accuracy_score(same_patients["label"], seen_pred)
    f1_rr = f1_score(test["label"], rr_pred, average="macro")
    f1_wave = f1_score(test["label"], wave_pred, average="macro")
    f1_seen = f1_score(same_patients["label"], seen_pred, average="macro")
    scores = f"balanced accuracy RR {bacc_rr:.3f}, wave {bacc_wave:.3f}, seen {bacc_seen:.3f}; "
    scores += f"macro-F1 RR {f1_rr:.3f}, wave {f1_wave:.3f}, seen {f1_seen:.3f} (trivial 0.2)"
    assert 0.4 < bacc_rr < 0.8 and f1_rr < 0.6, scores
    assert bacc_wave > bacc_rr + 0.12, scores
    assert f1_wave > f1_rr + 0.2, scores
    # new beats of the training patients are easier than new patients (de Chazal et al. 2004)
    assert f1_seen > f1_wave + 0.05, scores


def test_shards_round_trip(tmp_path: Path) -> None:
    data = ecg.generate(500, seed=2)
    shards.write(data, tmp_path / "ecg", rows_per_shard=128)
    back = shards.read(tmp_path / "ecg")
    for name, array in data.items():
        assert back[name].dtype == array.dtype and np.array_equal(back[name], array), name


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="class_rates"):
        ecg.generate(10, seed=0, class_rates=(0.5, 0.5, 0.5, 0.0, 0.0))
    rare = ecg.generate(20_000, seed=0, class_rates=(0.5, 0.2, 0.2, 0.05, 0.05), label_noise=0.0)
    rates = np.bincount(rare["label"], minlength=5) / 20_000
    assert np.allclose(rates, [0.5, 0.2, 0.2, 0.05, 0.05], atol=0.01), rates
    assert len(ecg.generate(0, seed=0)["beats"]) == 0
