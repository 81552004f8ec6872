"""Card fraud generator: seeded, the stated rates and structure, learnable with headroom, scales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from aifkit.course.synthetic import fraud, shards

DTYPES = {
    "time_s": np.int32,
    "customer": np.int32,
    "amount_eur": np.float32,
    "hour": np.uint8,
    "weekday": np.uint8,
    "merchant_category": np.uint8,
    "card_present": np.uint8,
    "distance_km": np.float32,
    "tx_last_24h": np.uint16,
    "account_age_days": np.uint16,
    "is_fraud": np.uint8,
    "fraud_kind": np.uint8,
}
KEEP_NEGATIVES = 0.1  # undersampling (Dal Pozzolo et al. 2015), undone by weights in the score


@pytest.fixture(scope="module")
def million() -> dict[str, np.ndarray]:
    """One shard's worth at a GPU tier: 10**6 transactions."""
    return fraud.generate(10**6, seed=2026)


def test_a_million_rows_have_every_field_with_its_dtype(million: dict[str, np.ndarray]) -> None:
    assert set(million) == set(DTYPES)
    for name, dtype in DTYPES.items():
        assert million[name].shape == (10**6,), name
        assert million[name].dtype == dtype, (name, million[name].dtype)


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    a, b, c = (fraud.generate(20_000, seed=s) for s in (7, 7, 8))
    for name in DTYPES:
        assert a[name].dtype == b[name].dtype == DTYPES[name], name
        assert np.array_equal(a[name], b[name]), name
    assert not np.array_equal(a["amount_eur"], c["amount_eur"])
    assert not np.array_equal(a["time_s"], c["time_s"])


def test_fraud_is_rare_and_the_label_noise_is_as_documented(
    million: dict[str, np.ndarray],
) -> None:
    truth = million["fraud_kind"] > 0
    label = million["is_fraud"] == 1
    assert abs(truth.mean() - 0.003) < 0.0003, f"true fraud rate {truth.mean():.5f}"
    assert 0.002 < label.mean() < 0.0035, f"label rate {label.mean():.5f}"
    unreported = (truth & ~label).sum() / truth.sum()
    assert 0.06 < unreported < 0.14, f"unreported share of frauds {unreported:.3f}"
    false_chargebacks = ~truth & label
    assert 0.00014 < false_chargebacks.mean() < 0.00026, f"{false_chargebacks.mean():.5f}"
    assert not million["card_present"][false_chargebacks].any(), "friendly fraud is online"
    kinds = np.bincount(million["fraud_kind"], minlength=4)[1:] / truth.sum()
    assert np.allclose(kinds, [0.60, 0.25, 0.15], atol=0.03), f"shares of kinds {kinds}"


def test_options_move_the_rates_and_zero_noise_gives_the_truth() -> None:
    data = fraud.generate(
        50_000, seed=3, fraud_rate=0.05, unreported_share=0.0, false_chargeback_rate=0.0
    )
    assert np.array_equal(data["is_fraud"], (data["fraud_kind"] > 0).astype(np.uint8))
    assert abs(data["is_fraud"].mean() - 0.05) < 0.005, f"{data['is_fraud'].mean():.4f}"
    assert fraud.generate(0, seed=1)["amount_eur"].shape == (0,)
    with pytest.raises(ValueError, match="fraud_rate"):
        fraud.generate(10, seed=1, fraud_rate=1.5)


def test_time_fields_agree_and_show_the_daily_and_weekly_cycles(
    million: dict[str, np.ndarray],
) -> None:
    time_s = million["time_s"].astype(np.int64)
    assert np.all(np.diff(time_s) >= 0), "rows are sorted by time"
    assert time_s.min() >= 0 and time_s.max() < 30 * 86_400
    assert np.array_equal(million["hour"], (time_s // 3600) % 24)
    assert np.array_equal(million["weekday"], (time_s // 86_400) % 7)
    hours = np.bincount(million["hour"], minlength=24) / 10**6
    assert hours[3] < 0.2 * hours[12], f"3 h vs noon: {hours[3]:.4f} {hours[12]:.4f}"
    per_weekday_day = np.bincount(million["weekday"], minlength=7) / np.bincount(
        np.arange(30) % 7, minlength=7
    )
    assert per_weekday_day[5] > 1.6 * per_weekday_day[6], f"Sat vs Sun {per_weekday_day}"


def test_physical_ranges(million: dict[str, np.ndarray]) -> None:
    amount, km = million["amount_eur"], million["distance_km"]
    assert amount.min() >= 0.5 and amount.max() < 1e6, (amount.min(), amount.max())
    assert 15 < np.median(amount) < 80, f"median amount {np.median(amount):.2f} EUR"
    assert km.min() > 0 and km.max() <= 20_000, (km.min(), km.max())
    assert million["merchant_category"].max() == len(fraud.MERCHANT_CATEGORIES) - 1
    assert set(np.unique(million["card_present"])) == {0, 1}
    bust_out = million["fraud_kind"] == fraud.BUST_OUT
    assert million["account_age_days"][bust_out].max() < 120, "bust-out hits new accounts"
    assert np.median(million["account_age_days"]) > 1000


def test_velocity_counts_the_customers_previous_24_hours() -> None:
    data = fraud.generate(3_000, seed=5, customers=60)
    customer, time_s = data["customer"], data["time_s"].astype(np.int64)
    for i in range(0, 3_000, 37):
        same = (customer == customer[i]) & (time_s >= time_s[i] - 86_400)
        before = same & ((time_s < time_s[i]) | ((time_s == time_s[i]) & (np.arange(3_000) < i)))
        assert data["tx_last_24h"][i] == before.sum(), i


def test_fraud_signals_and_their_look_alikes(million: dict[str, np.ndarray]) -> None:
    kind, cp = million["fraud_kind"], million["card_present"] == 1
    genuine, night = kind == 0, million["hour"] < 6
    online_fraud = kind == fraud.CARD_NOT_PRESENT
    assert night[online_fraud].mean() > 3 * night[genuine].mean(), "online fraud at night"
    velocity = million["tx_last_24h"]
    assert velocity[kind > 0].mean() > velocity[genuine].mean() + 0.8, "fraud comes in bursts"
    far = million["distance_km"] > 300
    assert far[genuine].sum() > 5 * far[kind > 0].sum(), "most far transactions are genuine"
    assert cp[genuine & far].mean() > 0.7, "the genuine traveller has the card"
    big = million["amount_eur"] > 500
    assert big[genuine].sum() > big[kind > 0].sum(), "most big amounts are genuine"


def _features(data: dict[str, np.ndarray], *, customer_context: bool) -> np.ndarray:
    """The raw features; with context, also log amount minus the customer's mean log amount."""
    columns = [data[name].astype(np.float64) for name in fraud.FEATURES]
    if customer_context:
        log_amount = np.log(data["amount_eur"].astype(np.float64))
        customer = data["customer"]
        mean = np.bincount(customer, log_amount) / np.maximum(np.bincount(customer), 1)
        columns.append(log_amount - mean[customer])
    return np.column_stack(columns)


def test_logistic_regression_learns_and_boosted_trees_have_clear_headroom() -> None:
    rows = 400_000
    train, test = fraud.generate(rows, seed=11), fraud.generate(rows, seed=12)
    keep = np.random.default_rng(0)
    fit_rows = (train["is_fraud"] == 1) | (keep.random(rows) < KEEP_NEGATIVES)
    score_rows = (test["is_fraud"] == 1) | (keep.random(rows) < KEEP_NEGATIVES)
    y_fit, y_test = train["is_fraud"][fit_rows], test["is_fraud"][score_rows]
    weight = np.where(y_test == 1, 1.0, 1.0 / KEEP_NEGATIVES)  # PR-AUC of the full test set
    base_rate = test["is_fraud"].mean()
    category = fraud.FEATURES.index("merchant_category")

    def pr_auc(model: Any, context: bool) -> float:
        x_fit = _features(train, customer_context=context)[fit_rows]
        model.fit(x_fit, y_fit)
        x_test = _features(test, customer_context=context)[score_rows]
        p = model.predict_proba(x_test)[:, 1]
        return float(average_precision_score(y_test, p, sample_weight=weight))

    def boosted() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=60,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            early_stopping=False,
            categorical_features=[category],
            random_state=0,
        )

    with threadpool_limits(1):  # the CI machine is busy; threads only fight there
        linear = make_pipeline(
            ColumnTransformer(
                [("category", OneHotEncoder(handle_unknown="ignore"), [category])],
                remainder=StandardScaler(),
            ),
            LogisticRegression(max_iter=1000),
        )
        baseline = pr_auc(linear, context=False)
        trees = pr_auc(boosted(), context=False)
        trees_in_context = pr_auc(boosted(), context=True)
    scores = f"base {base_rate:.4f} LR {baseline:.3f} HGB {trees:.3f} +ctx {trees_in_context:.3f}"
    assert baseline > 20 * base_rate, scores
    assert baseline < 0.35, scores
    assert trees > 1.6 * baseline and trees > baseline + 0.15, scores
    assert trees_in_context > trees + 0.02, scores


def test_a_shard_round_trip(tmp_path: Path) -> None:
    data = fraud.generate(1_000, seed=9)
    shards.write(data, tmp_path / "fraud", rows_per_shard=300)
    back = shards.read(tmp_path / "fraud")
    for name in DTYPES:
        assert back[name].dtype == data[name].dtype and np.array_equal(back[name], data[name])
