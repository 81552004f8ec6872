"""Card transactions for fraud detection: rare, noisy positives hidden among look-alikes.

A sample is ONE card transaction (one authorisation) by one customer of a bank, over a period of
``period_days`` days (default 30) that starts on a Monday at 00:00 local time. Rows come sorted
by time, so the first rows are the past and the last rows the future (split by ``time_s`` for an
honest temporal validation, as a bank would).

What it stands in for
---------------------
- ULB Credit Card Fraud Detection: A. Dal Pozzolo, O. Caelen, R. A. Johnson, G. Bontempi (2015),
  "Calibrating Probability with Undersampling for Unbalanced Classification", IEEE SSCI;
  https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud (284,807 European card transactions
  in two days, 0.172 % fraud, features anonymised by PCA).
- IEEE-CIS Fraud Detection (Vesta Corporation, Kaggle 2019),
  https://www.kaggle.com/c/ieee-fraud-detection (card-not-present e-commerce, about 3.5 % fraud,
  velocity counts and time deltas as features).

The simulation follows the transaction simulator of Y.-A. Le Borgne, W. Siblini, B. Lebichot,
G. Bontempi (2022), "Reproducible Machine Learning for Credit Card Fraud Detection - Practical
Handbook", Université Libre de Bruxelles, https://github.com/Fraud-Detection-Handbook (customer
profiles with their own mean amount and activity, then fraud *scenarios* injected on top), with
the agent-based ideas of BankSim (E. A. Lopez-Rojas, S. Axelsson (2014), "BankSim: A Bank
Payment Simulation for Fraud Detection Research", EMSS): merchant categories with their own
amount distributions, and fraudsters who favour some of them.

Structure it reproduces
-----------------------
- Imbalance: a fraction ``fraud_rate`` of transactions is fraud (default 0.3 %, between ULB's
  0.17 % and what issuers report for card-not-present payments).
- Customers: ``customers`` cardholders (default one per 40 transactions), each with an activity
  level (gamma, shape 2), a typical spend (log-normal factor, sigma 0.7, on top of the merchant
  category's median), an account age (4 % opened less than 90 days before the period), and
  with probability 0.25 one trip of 2-9 days, 50-20,000 km from home, in the period.
- Seasonality: a daily cycle per merchant category (shops by day, restaurants at lunch and in the
  evening, digital goods late) and a weekly one (busy Friday and Saturday, quiet Sunday).
- Genuine amounts: log-normal, median = category median x the customer's typical-spend factor,
  sigma 0.5 within a customer; 1 % are big purchases (x about 4.5: electronics, jewellery,
  travel), near home, by day, card present: the classic false positive of an amount rule.
- Genuine far-from-home transactions: the customer's trip (card present, normal amounts,
  restaurants, fuel, travel): the classic false positive of a distance rule.
- Fraud comes in *episodes* (a compromised card is used several times in a short time, so
  ``tx_last_24h`` rises during the episode), of three kinds (``fraud_kind``):
  1. card not present (60 % of fraud rows): stolen card details used online, mostly at night
     (fraud rings in other time zones, bots), in electronics, digital goods, travel, jewellery;
     often a small test payment first; geolocated far away, or near (30 %, through a proxy);
     bursts of about 4 payments minutes apart.
  2. counterfeit card present (25 %): a skimmed card cloned and used in shops far from home, by
     day, about 3 payments hours apart, big amounts (electronics, jewellery, fuel).
  3. new-account bust-out (15 %): an account opened less than 90 days before (often a synthetic
     identity) is maxed out, about 6 payments within a day or two, near home, big amounts.
  Fraud amounts are drawn WITHOUT the customer's typical-spend factor (x2.2-3.3 the category
  median, sigma 0.5): in absolute terms they sit inside the spread of genuine amounts (customer
  factors spread those x2 either way); what gives them away is that they are unusual FOR THIS
  CUSTOMER (a learner groups by ``customer`` to see it).
- Label noise (``is_fraud`` is what the bank knows, ``fraud_kind`` the truth):
  ``unreported_share`` of fraud episodes (default 10 %) are never reported by the cardholder
  and stay labelled 0; ``false_chargeback_rate`` of genuine transactions (default 0.02 %,
  about 7 % of the positive labels) are disputed by their own cardholder ("friendly fraud", all
  card-not-present) and labelled 1.

Fields (one row per transaction)
--------------------------------
- ``time_s`` int32: seconds since the start of the period (Monday 00:00, local time).
- ``customer`` int32: the cardholder's id, 0 .. customers-1 (context, not a feature by itself).
- ``amount_eur`` float32: amount in euros, to the cent, >= 0.50.
- ``hour`` uint8: hour of the day, 0-23 (from ``time_s``).
- ``weekday`` uint8: 0 = Monday ... 6 = Sunday (from ``time_s``).
- ``merchant_category`` uint8: index into ``MERCHANT_CATEGORIES`` (10 categories).
- ``card_present`` uint8: 1 chip/contactless at a terminal, 0 card not present (online, phone).
- ``distance_km`` float32: distance from the customer's home to the terminal (card present) or
  to the device's IP geolocation (card not present), 0-20,000 km.
- ``tx_last_24h`` uint16: the customer's transactions in the 24 h before this one (velocity).
- ``account_age_days`` uint16: days since the account was opened, at the transaction.
- ``is_fraud`` uint8: the label, 1 = reported as fraud (chargeback), WITH the label noise above.
- ``fraud_kind`` uint8: the truth, 0 = genuine, 1 card not present, 2 counterfeit card present,
  3 new-account bust-out. Never a feature: it is for measuring the label noise and for
  evaluating against the truth.

What a simple baseline misses
-----------------------------
Logistic regression on the raw features sees that fraud is more often card-not-present, far,
bigger and faster, and reaches a PR-AUC many times the base rate, but it cannot see that
(a) night matters only for card-not-present payments (and ``hour`` is circular, the risk is at
0-5 h, not at "large hour"), (b) far from home is risky only with the card NOT present or with a
big amount (the card-present traveller spends normally), (c) velocity and category risks
combine, (d) an amount is suspicious relative to the customer's own typical spend. Gradient
boosted trees learn (a)-(c) from the raw features; (d) needs context: a feature such as the log
amount minus the customer's mean log amount (``groupby(customer)``) lifts them again. The label
noise caps every model's precision. Measured on held-out seeds (train on 400,000 rows of one
seed, negatives undersampled to 10 %, score PR-AUC on another seed): base rate 0.003, logistic
regression (one-hot category, standardised raw features) 0.16-0.19, HistGradientBoosting on the
raw features 0.46-0.51, with the customer-relative amount 0.49-0.55.
"""

from __future__ import annotations

import numpy as np

from aifkit.course.synthetic import require_shares

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurant",
    "fuel",
    "clothing",
    "electronics",
    "travel",
    "digital_goods",
    "health",
    "entertainment",
    "jewellery",
)
"""Merchant categories (index = ``merchant_category``), after the MCC groups BankSim uses."""

FEATURES: tuple[str, ...] = (
    "amount_eur",
    "hour",
    "weekday",
    "merchant_category",
    "card_present",
    "distance_km",
    "tx_last_24h",
    "account_age_days",
)
"""The fields a model may use as they are (``customer`` and ``time_s`` are context)."""

GENUINE, CARD_NOT_PRESENT, COUNTERFEIT, BUST_OUT = 0, 1, 2, 3

# Median amount per category, euros (orders of magnitude of European card spending).
_MEDIAN_EUR = np.array([30, 25, 55, 55, 120, 220, 12, 25, 35, 180], dtype=np.float64)
# Share of genuine transactions per category, and of the big genuine purchases.
_GENUINE_MIX = np.array([0.25, 0.15, 0.10, 0.10, 0.05, 0.04, 0.12, 0.06, 0.08, 0.05])
_TRIP_MIX = np.array([0.12, 0.30, 0.15, 0.06, 0.02, 0.18, 0.04, 0.03, 0.08, 0.02])
_BIG_MIX = np.array([0, 0, 0, 0.15, 0.45, 0.25, 0, 0, 0, 0.15])
# Card-present share of genuine transactions per category.
_CARD_PRESENT = np.array([0.97, 0.95, 0.98, 0.8, 0.6, 0.25, 0.0, 0.9, 0.7, 0.85])
# Category mix per fraud kind (index 1..3).
_FRAUD_MIX = {
    CARD_NOT_PRESENT: np.array([0, 0, 0, 0.10, 0.30, 0.15, 0.30, 0, 0.05, 0.10]),
    COUNTERFEIT: np.array([0.10, 0.10, 0.15, 0.10, 0.30, 0, 0, 0, 0, 0.25]),
    BUST_OUT: np.array([0, 0, 0, 0.10, 0.35, 0.20, 0.10, 0, 0, 0.25]),
}
_KIND_SHARE = np.array([0.60, 0.25, 0.15])  # of fraud rows: card not present, counterfeit, bust-out
_EPISODE_MEAN_SIZE = {CARD_NOT_PRESENT: 4.0, COUNTERFEIT: 3.0, BUST_OUT: 6.0}
_EPISODE_MEAN_GAP_S = {CARD_NOT_PRESENT: 600.0, COUNTERFEIT: 5400.0, BUST_OUT: 14400.0}
_FRAUD_LOG_MARKUP = {CARD_NOT_PRESENT: 0.8, COUNTERFEIT: 0.9, BUST_OUT: 1.2}
_WEEKDAY_VOLUME = np.array([0.90, 0.95, 1.00, 1.05, 1.20, 1.25, 0.65])
_DAY_S = 86_400
_MAX_KM = 20_000.0  # half the Earth's circumference


def _hour_profile(*peaks: tuple[float, float, float], floor: float = 0.02) -> np.ndarray:
    """A 24-hour profile: a floor plus Gaussian bumps (centre hour, width in hours, height)."""
    hours = np.arange(24, dtype=np.float64)
    weight = np.full(24, floor)
    for centre, width, height in peaks:
        circular = np.minimum(np.abs(hours - centre), 24 - np.abs(hours - centre))
        weight += height * np.exp(-0.5 * (circular / width) ** 2)
    profile: np.ndarray = weight / weight.sum()
    return profile


_SHOP = _hour_profile((11.5, 2.0, 1.0), (17.5, 2.0, 1.0))
_DINING = _hour_profile((12.5, 1.0, 1.0), (20.5, 1.8, 1.3), (0.0, 1.0, 0.15))
_FUEL = _hour_profile((8.0, 2.0, 0.8), (17.5, 2.5, 1.0), floor=0.05)
_ONLINE = _hour_profile((13.0, 3.0, 0.6), (21.5, 2.0, 1.0), floor=0.08)
_GENUINE_HOURS = np.stack(
    [_SHOP, _DINING, _FUEL, _SHOP, _SHOP, _ONLINE, _ONLINE, _SHOP, _DINING, _SHOP]
)
_FRAUD_HOURS = {
    CARD_NOT_PRESENT: _hour_profile((3.0, 2.0, 1.0), floor=0.15),
    COUNTERFEIT: _hour_profile((14.0, 3.0, 1.0)),
    BUST_OUT: _hour_profile(floor=1.0),
}


def _pick(rng: np.random.Generator, probabilities: np.ndarray, size: int) -> np.ndarray:
    """``size`` draws of an index with the given probabilities (inverse CDF, vectorised)."""
    cdf = np.cumsum(probabilities)
    index = np.searchsorted(cdf / cdf[-1], rng.random(size), side="right")
    return np.minimum(index, len(probabilities) - 1)


def _hours_by_category(
    rng: np.random.Generator, category: np.ndarray, profiles: np.ndarray
) -> np.ndarray:
    """An hour for each row from its category's daily profile."""
    u = rng.random(len(category))
    hour = np.empty(len(category), dtype=np.int64)
    for c in range(len(profiles)):
        rows = category == c
        cdf = np.cumsum(profiles[c])
        hour[rows] = np.searchsorted(cdf / cdf[-1], u[rows], side="right")
    return np.minimum(hour, 23)


def _log_normal_km(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return np.minimum(median * np.exp(sigma * rng.standard_normal(size)), _MAX_KM)


def _episode_sizes(rng: np.random.Generator, rows: int, mean_size: float) -> np.ndarray:
    """Episode sizes (>= 1, 1 + Poisson) that add up to exactly ``rows``."""
    if rows == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = 1 + rng.poisson(mean_size - 1.0, size=rows)
    total = np.cumsum(sizes)
    episodes = int(np.searchsorted(total, rows)) + 1
    sizes = sizes[:episodes].copy()
    sizes[-1] -= total[episodes - 1] - rows
    return sizes


def _velocity(customer: np.ndarray, time_s: np.ndarray, period_s: int) -> np.ndarray:
    """How many of the same customer's transactions fall in the 24 h before each one."""
    key = customer.astype(np.int64) * (period_s + 2 * _DAY_S) + time_s.astype(np.int64)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first_in_window = np.searchsorted(ordered, ordered - _DAY_S, side="left")
    count = np.empty(len(key), dtype=np.int64)
    count[order] = np.arange(len(key)) - first_in_window
    return np.minimum(count, np.iinfo(np.uint16).max)


def generate(
    n: int,
    *,
    seed: int,
    fraud_rate: float = 0.003,
    unreported_share: float = 0.10,
    false_chargeback_rate: float = 0.0002,
    customers: int | None = None,
    period_days: int = 30,
) -> dict[str, np.ndarray]:
    """``n`` card transactions (one row each, sorted by time), fields as in the module docstring.

    ``fraud_rate``: share of truly fraudulent transactions; ``unreported_share``: share of fraud
    episodes left labelled 0; ``false_chargeback_rate``: share of genuine transactions labelled 1;
    ``customers``: number of cardholders (default ``ceil(n / 40)``); ``period_days``: length of
    the period.
    """
    if n < 0:
        raise ValueError(f"n must be at least 0, not {n}")
    require_shares(
        fraud_rate=fraud_rate,
        unreported_share=unreported_share,
        false_chargeback_rate=false_chargeback_rate,
    )
    if period_days < 1:
        raise ValueError(f"period_days must be at least 1, not {period_days}")
    rng = np.random.default_rng(seed)
    n_customers = max(1, -(-n // 40)) if customers is None else customers
    if n_customers < 1:
        raise ValueError(f"customers must be at least 1, not {n_customers}")
    period_s = period_days * _DAY_S

    # Customers: activity, typical spend, account age at the start, and a possible trip.
    activity = rng.gamma(2.0, 1.0, n_customers)
    log_spend = 0.7 * rng.standard_normal(n_customers)
    is_new = rng.random(n_customers) < 0.04
    age0 = np.where(
        is_new,
        rng.integers(0, 90, n_customers),
        np.minimum(1825.0 * np.exp(0.8 * rng.standard_normal(n_customers)), 15_000).astype(
            np.int64
        ),
    )
    has_trip = rng.random(n_customers) < 0.25
    trip_first_day = rng.integers(0, period_days, n_customers)
    trip_last_day = np.where(has_trip, trip_first_day + rng.integers(1, 9, n_customers), -1)
    trip_km = np.clip(_log_normal_km(rng, 600.0, 0.9, n_customers), 50.0, _MAX_KM)

    # Fraud rows by kind, then genuine rows.
    n_fraud = int(rng.binomial(n, fraud_rate))
    n_by_kind = rng.multinomial(n_fraud, _KIND_SHARE)
    n_genuine = n - n_fraud

    # Genuine transactions.
    customer = np.repeat(
        np.arange(n_customers), rng.multinomial(n_genuine, activity / activity.sum())
    )
    day_weight = _WEEKDAY_VOLUME[np.arange(period_days) % 7]
    day = _pick(rng, day_weight, n_genuine)
    on_trip = (day >= trip_first_day[customer]) & (day <= trip_last_day[customer])
    big = (rng.random(n_genuine) < 0.01) & ~on_trip
    category = np.where(
        on_trip,
        _pick(rng, _TRIP_MIX, n_genuine),
        np.where(big, _pick(rng, _BIG_MIX, n_genuine), _pick(rng, _GENUINE_MIX, n_genuine)),
    )
    hour = _hours_by_category(rng, category, _GENUINE_HOURS)
    time_s = day * _DAY_S + hour * 3600 + rng.integers(0, 3600, n_genuine)
    card_present = (rng.random(n_genuine) < _CARD_PRESENT[category]) | big
    log_amount = np.log(_MEDIAN_EUR[category]) + log_spend[customer]
    log_amount += 0.5 * rng.standard_normal(n_genuine)
    log_amount += np.where(big, 1.5 + 0.4 * rng.standard_normal(n_genuine), 0.0)
    local_km = np.where(
        card_present,
        _log_normal_km(rng, 4.0, 1.0, n_genuine),
        _log_normal_km(rng, 10.0, 1.0, n_genuine),
    )
    distance = np.where(
        on_trip,
        np.minimum(trip_km[customer] * np.exp(0.2 * rng.standard_normal(n_genuine)), _MAX_KM),
        local_km,
    )
    kind = np.zeros(n_genuine, dtype=np.int64)
    episode = np.full(n_genuine, -1, dtype=np.int64)

    # Fraud episodes, kind by kind.
    parts = [(customer, time_s, category, card_present, log_amount, distance, kind, episode)]
    new_customers = np.flatnonzero(is_new)
    episodes_so_far = 0
    for k, rows in zip((CARD_NOT_PRESENT, COUNTERFEIT, BUST_OUT), n_by_kind, strict=True):
        sizes = _episode_sizes(rng, int(rows), _EPISODE_MEAN_SIZE[k])
        n_ep = len(sizes)
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        position = np.arange(rows) - first
        pool = new_customers if k == BUST_OUT and len(new_customers) else np.arange(n_customers)
        victim = np.repeat(pool[rng.integers(0, len(pool), n_ep)], sizes)
        start = rng.integers(0, period_days, n_ep) * _DAY_S
        start += _pick(rng, _FRAUD_HOURS[k], n_ep) * 3600 + rng.integers(0, 3600, n_ep)
        gaps = rng.exponential(_EPISODE_MEAN_GAP_S[k], rows)
        gaps[position == 0] = 0.0
        elapsed = np.cumsum(gaps)
        offset = (elapsed - elapsed[first]).astype(np.int64)
        f_time = (np.repeat(start, sizes) + offset) % period_s
        f_category = _pick(rng, _FRAUD_MIX[k], int(rows))
        f_log_amount = np.log(_MEDIAN_EUR[f_category]) + _FRAUD_LOG_MARKUP[k]
        f_log_amount += 0.5 * rng.standard_normal(rows)
        if k == CARD_NOT_PRESENT:
            f_card_present = np.zeros(rows, dtype=bool)
            card_test = (position == 0) & (rng.random(rows) < 0.5)
            f_log_amount = np.where(card_test, np.log(rng.uniform(0.5, 5.0, rows)), f_log_amount)
            by_proxy = rng.random(rows) < 0.3
            f_distance = np.where(
                by_proxy,
                _log_normal_km(rng, 20.0, 1.0, int(rows)),
                _log_normal_km(rng, 1500.0, 1.2, int(rows)),
            )
        elif k == COUNTERFEIT:
            f_card_present = np.ones(rows, dtype=bool)
            f_distance = np.maximum(_log_normal_km(rng, 800.0, 1.0, int(rows)), 30.0)
        else:
            f_card_present = rng.random(rows) < 0.5
            f_distance = _log_normal_km(rng, 10.0, 1.0, int(rows))
        f_episode = episodes_so_far + np.repeat(np.arange(n_ep), sizes)
        episodes_so_far += n_ep
        parts.append(
            (
                victim,
                f_time,
                f_category,
                f_card_present,
                f_log_amount,
                f_distance,
                np.full(rows, k),
                f_episode,
            )
        )

    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    customer, time_s, category, card_present, log_amount, distance, kind, episode = columns

    # Labels: whole fraud episodes go unreported; some genuine card-not-present ones disputed.
    reported_episode = rng.random(episodes_so_far) >= unreported_share
    is_fraud = (kind > 0) & reported_episode[np.maximum(episode, 0)]
    genuine_cnp = (kind == 0) & ~card_present
    share_cnp = max(int(genuine_cnp.sum()), 1) / max(n_genuine, 1)
    chargeback_p = min(1.0, false_chargeback_rate / share_cnp)
    is_fraud |= genuine_cnp & (rng.random(n) < chargeback_p)

    amount = np.maximum(np.round(np.exp(log_amount), 2), 0.5)
    fields = {
        "time_s": time_s.astype(np.int32),
        "customer": customer.astype(np.int32),
        "amount_eur": amount.astype(np.float32),
        "hour": ((time_s // 3600) % 24).astype(np.uint8),
        "weekday": ((time_s // _DAY_S) % 7).astype(np.uint8),
        "merchant_category": category.astype(np.uint8),
        "card_present": card_present.astype(np.uint8),
        "distance_km": distance.astype(np.float32),
        "tx_last_24h": _velocity(customer, time_s, period_s).astype(np.uint16),
        "account_age_days": np.minimum(age0[customer] + time_s // _DAY_S, 65_535).astype(np.uint16),
        "is_fraud": is_fraud.astype(np.uint8),
        "fraud_kind": kind.astype(np.uint8),
    }
    order = np.argsort(fields["time_s"], kind="stable")
    return {name: column[order] for name, column in fields.items()}
