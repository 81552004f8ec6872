"""Capstone f04: day-ahead forecasts of hourly PV output over many sites, with quantiles.

The task. For every site of :mod:`aifkit.course.synthetic.energy` and every daylight hour ``t``
of the year, forecast the output at ``t`` one day ahead: what is known is the site's measured
output up to ``t - 24`` (the last :data:`HISTORY_H` hours of it), the clear-sky output of the hour
(geometry: known a year ahead), the day-ahead cloud forecast of the hours around ``t`` and the
hour of the day. Output is in **fraction of the site's AC capacity**, so a 5 MW park and a 5 kW
roof weigh the same; a forecast is three quantiles, P10, P50 and P90 (:data:`QUANTILES`).

The metric. MAPE misbehaves: it divides by the actual output, which is 0 at night (0/0) and
tiny at dawn, dusk and under thick clouds (an error of 1 % of capacity on an output of 0.5 % is
200 %). So the graded score is the **nMAE**: the mean absolute error of the P50 in % of
capacity over the daylight hours (clear-sky output above zero; at night every forecast here is
0 and exact, which would only dilute the score). MAPE is reported where the output is above
:data:`MAPE_FLOOR` of capacity, and the quantiles are scored with the pinball loss.

The given baseline is persistence, the same hour yesterday (it knows the site and the season,
not the weather change), with its P10/P90 from the quantiles of its residuals in training.
Held-out data are other sites in another year (another seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from aifkit.course.capstone import Target
from aifkit.course.synthetic import energy as generator

__all__ = [
    "FEATURES",
    "HISTORY_H",
    "HORIZON_H",
    "MAPE_FLOOR",
    "QUANTILES",
    "TARGET",
    "Persistence",
    "Windows",
    "evaluate",
    "make_data",
    "mape",
    "mean_pinball",
    "median_column",
    "nmae",
    "portfolio_errors",
    "score",
    "train_baseline",
    "windows",
]

HISTORY_H = 24  # hours of measured output the forecast sees, ending HORIZON_H before the target
HORIZON_H = 24  # day-ahead: the newest measurement is the same hour yesterday
QUANTILES = (0.1, 0.5, 0.9)
MAPE_FLOOR = 0.1  # MAPE only where the output is above 10 % of capacity
FEATURES = (
    *(f"power_lag_{HORIZON_H + HISTORY_H - 1 - k}h" for k in range(HISTORY_H)),
    "clear_sky",
    "clear_sky_lag_24h",
    "cloud_forecast_prev",
    "cloud_forecast",
    "cloud_forecast_next",
    "hour_sin",
    "hour_cos",
)
PERSISTENCE_COLUMN = HISTORY_H - 1  # power_lag_24h: the same hour yesterday
CLEAR_SKY_COLUMN = HISTORY_H
CLOUD_COLUMN = HISTORY_H + 3

TARGET = Target(
    metric="nMAE of the P50, daylight hours (% of capacity)",
    threshold=9.5,
    higher_is_better=False,
    baseline=12.2,
)


class Forecaster(Protocol):
    """What the capstone grades: ``predict(X)`` gives P10/P50/P90 (n, 3), or the P50 (n,)."""

    def predict(self, features: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class Windows:
    """One row per (site, daylight hour): the features, the target and where it came from."""

    X: np.ndarray  # float32 (rows, len(FEATURES))
    y: np.ndarray  # float32 (rows,): output at the target hour, fraction of capacity
    site: np.ndarray  # int64 (rows,): the site's row in the generated data
    hour: np.ndarray  # int64 (rows,): the target hour's index in the series
    capacity_kw: np.ndarray  # float32 (rows,)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray) -> Windows:
        """The rows ``rows`` (an index array or a boolean mask)."""
        return Windows(
            self.X[rows], self.y[rows], self.site[rows], self.hour[rows], self.capacity_kw[rows]
        )


def make_data(
    n_sites: int, *, seed: int, hours: int = generator.HOURS_PER_YEAR
) -> dict[str, np.ndarray]:
    """``n_sites`` sites over ``hours`` hours from the generator (a seed is a site set and a year)."""
    return generator.generate(n_sites, seed=seed, hours=hours)


def windows(
    data: dict[str, np.ndarray], sites: Sequence[int] | np.ndarray | None = None
) -> Windows:
    """The forecasting rows of ``data`` (the generator's fields): daylight hours with a full history.

    ``sites`` chooses rows of the data (e.g. a rank's share); default all. Night hours are left
    out: their clear-sky output is 0, and so is every sensible forecast.
    """
    chosen = np.arange(len(data["capacity_kw"])) if sites is None else np.asarray(sites)
    capacity = data["capacity_kw"][chosen].astype(np.float32)
    power = data["power_kw"][chosen] / capacity[:, None]
    clear = data["clear_sky_kw"][chosen] / capacity[:, None]
    cloud = data["cloud_forecast"][chosen]
    hours = power.shape[1]
    first = HORIZON_H + HISTORY_H - 1
    if hours < first + 2:
        raise ValueError(f"need at least {first + 2} hours for one forecast, got {hours}")
    candidates = np.arange(first, hours - 1)
    row, col = np.nonzero(clear[:, candidates] > 0)
    t = candidates[col]
    lags = [power[row, t - HORIZON_H - k] for k in range(HISTORY_H - 1, -1, -1)]
    hour_of_day = data["hour_of_year"][0][t].astype(np.float64) % 24 + 0.5
    angle = 2 * np.pi * hour_of_day / 24.0
    features = np.column_stack(
        [
            *lags,
            clear[row, t],
            clear[row, t - HORIZON_H],
            cloud[row, t - 1],
            cloud[row, t],
            cloud[row, t + 1],
            np.sin(angle),
            np.cos(angle),
        ]
    ).astype(np.float32)
    return Windows(
        X=features,
        y=power[row, t].astype(np.float32),
        site=chosen[row].astype(np.int64),
        hour=t.astype(np.int64),
        capacity_kw=capacity[row],
    )


def median_column(prediction: Any, rows: int) -> np.ndarray:
    """The P50 of a prediction: the middle column of an (n, 3) array, or an (n,) array itself."""
    values = np.asarray(prediction, dtype=np.float64)
    if values.ndim == 2 and values.shape == (rows, len(QUANTILES)):
        return values[:, 1]
    if values.shape == (rows,):
        return values
    raise ValueError(
        f"predict must return shape ({rows}, {len(QUANTILES)}) (P10, P50, P90) or ({rows},), "
        f"got {values.shape}"
    )


def nmae(p50: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error in % of capacity (both in fractions of capacity)."""
    return float(100.0 * np.mean(np.abs(np.asarray(p50, dtype=np.float64) - y)))


def mape(p50: np.ndarray, y: np.ndarray, *, floor: float = MAPE_FLOOR) -> float:
    """MAPE (%) over the rows whose actual output is above ``floor`` of capacity (NaN if none)."""
    y = np.asarray(y, dtype=np.float64)
    keep = y > floor
    if not keep.any():
        return math.nan
    return float(100.0 * np.mean(np.abs(np.asarray(p50)[keep] - y[keep]) / y[keep]))


def mean_pinball(quantiles: np.ndarray, y: np.ndarray, taus: Sequence[float] = QUANTILES) -> float:
    """Mean pinball loss (% of capacity) of quantile forecasts (n, len(taus)) over taus and rows."""
    q = np.asarray(quantiles, dtype=np.float64)
    tau = np.asarray(taus, dtype=np.float64)[None, :]
    error = np.asarray(y, dtype=np.float64)[:, None] - q
    return float(100.0 * np.mean(np.maximum(tau * error, (tau - 1.0) * error)))


def score(model: Forecaster, data: Windows) -> float:
    """The graded score: nMAE (% of capacity) of ``model``'s P50 on ``data`` (lower is better)."""
    p50 = median_column(model.predict(data.X), len(data))
    if not np.all(np.isfinite(p50)):
        return math.nan
    return nmae(p50, data.y)


def evaluate(model: Forecaster, data: Windows) -> dict[str, float]:
    """nMAE, MAPE above the floor, and (for quantile forecasts) pinball loss and P10-P90 coverage."""
    prediction = np.asarray(model.predict(data.X), dtype=np.float64)
    p50 = median_column(prediction, len(data))
    found = {"nmae": nmae(p50, data.y), "mape": mape(p50, data.y)}
    if prediction.ndim == 2:
        found["pinball"] = mean_pinball(prediction, data.y)
        inside = (data.y >= prediction[:, 0]) & (data.y <= prediction[:, 2])
        found["coverage_p10_p90"] = float(np.mean(inside))
    return found


class Persistence:
    """The given baseline: P50 = the same hour yesterday; P10/P90 from residual quantiles."""

    def __init__(self, offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.offsets = np.asarray(offsets, dtype=np.float32)

    def predict(self, features: np.ndarray) -> np.ndarray:
        yesterday = np.asarray(features)[:, PERSISTENCE_COLUMN : PERSISTENCE_COLUMN + 1]
        return np.clip(yesterday + self.offsets[None, :], 0.0, 1.0)


def train_baseline(train: Windows) -> Persistence:
    """Persistence, its quantile offsets fitted on the residuals of ``train``."""
    residual = train.y - train.X[:, PERSISTENCE_COLUMN]
    low, _, high = np.quantile(residual, QUANTILES)  # the P50 stays yesterday's value
    return Persistence((float(low), 0.0, float(high)))


def portfolio_errors(p50: np.ndarray, data: Windows) -> dict[str, float]:
    """The errors of the sites' summed output, in fractions of their summed capacity per hour.

    Per-site errors partly cancel in the sum (clouds differ from site to site): the grid and a
    balancing party see the portfolio. ``shortfall`` counts hours where the forecast was above
    what came (the gap is bought as upward balancing energy), ``surplus`` the other way round;
    both are averages over every hour of the period (night counts as an exact 0).
    """
    err_kw = (np.asarray(p50, dtype=np.float64) - data.y) * data.capacity_kw
    hours = data.hour.max() - data.hour.min() + 1
    per_hour = np.bincount(data.hour - data.hour.min(), weights=err_kw, minlength=hours)
    fleet = float(data.capacity_kw[np.unique(data.site, return_index=True)[1]].sum())
    return {
        "shortfall": float(np.clip(per_hour, 0, None).sum() / hours / fleet),
        "surplus": float(np.clip(-per_hour, 0, None).sum() / hours / fleet),
        "site_mae": float(np.abs(err_kw).sum() / hours / fleet),
    }
