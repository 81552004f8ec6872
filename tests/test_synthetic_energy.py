"""PV generation of many sites: seeded, physical, spatially correlated, forecastable, at scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from aifkit.course.synthetic import energy, shards

SERIES = ("power_kw", "clear_sky_kw", "cloud_forecast", "temperature_c")
SITE = ("capacity_kw", "dc_ac_ratio", "latitude", "longitude", "tilt_deg", "azimuth_deg")


@pytest.fixture(scope="module")
def year() -> dict[str, np.ndarray]:
    """60 sites, one year."""
    return energy.generate(60, seed=11)


def _days(data: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(data["hour_of_year"][0] // 24 + 1)


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    a = energy.generate(5, seed=7, hours=500)
    b = energy.generate(5, seed=7, hours=500)
    c = energy.generate(5, seed=8, hours=500)
    assert sorted(a) == sorted(b) == sorted([*SERIES, *SITE, "anomaly", "hour_of_year"])
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
        assert len(a[name]) == 5, name
    for name in SERIES:
        assert a[name].dtype == np.float32 and a[name].shape == (5, 500), name
    assert a["anomaly"].dtype == np.int8 and a["hour_of_year"].dtype == np.int16
    assert not np.array_equal(a["power_kw"], c["power_kw"])
    assert not np.array_equal(a["latitude"], c["latitude"])


def test_the_sun_is_where_the_almanac_puts_it() -> None:
    hours = np.arange(24)
    june = energy.solar_elevation_deg(hours + 24 * 171, 49.6, 6.13).max()  # 21 June
    december = energy.solar_elevation_deg(hours + 24 * 354, 49.6, 6.13).max()  # 21 December
    assert abs(june - 63.8) < 0.6, f"noon elevation on 21 June {june:.2f}, expected 63.8"
    assert abs(december - 17.0) < 0.6, f"noon elevation on 21 December {december:.2f}, expected 17"
    start = energy.hour_of_year_index("2023-03-01T06", 3)
    assert start.tolist() == [(31 + 28) * 24 + 6, (31 + 28) * 24 + 7, (31 + 28) * 24 + 8]


def test_zero_at_night_and_never_above_capacity(year: dict[str, np.ndarray]) -> None:
    power, clear, capacity = year["power_kw"], year["clear_sky_kw"], year["capacity_kw"][:, None]
    elevation = energy.solar_elevation_deg(
        year["hour_of_year"][:1], year["latitude"][:, None], year["longitude"][:, None]
    )
    night = elevation < 0
    assert 0.4 < night.mean() < 0.6, f"night fraction {night.mean():.3f}"
    assert not power[night].any() and not clear[night].any(), "output with the sun down"
    assert (power >= 0).all() and (power <= capacity).all(), "output outside [0, capacity]"
    assert (clear <= capacity * (1 + 1e-6)).all(), "clear-sky output above capacity"
    clipped = (clear >= capacity * 0.999).mean()
    assert 0 < clipped < 0.02, f"clipped clear-sky hours {clipped:.4f}"
    assert (power[elevation > 20] > 0).mean() > 0.95, "high sun without output"


def test_seasons_capacity_factor_weather_and_anomalies(year: dict[str, np.ndarray]) -> None:
    power, capacity, day = year["power_kw"], year["capacity_kw"][:, None], _days(year)
    summer, winter = (day >= 152) & (day <= 212), (day <= 31) | (day >= 335)
    ratio = power[:, summer].sum() / power[:, winter].sum()
    assert 3.0 < ratio < 10.0, f"June-July over December-January energy {ratio:.2f}"
    factor = float((power / capacity).mean())
    assert 0.09 < factor < 0.17, f"capacity factor {factor:.3f}"
    cloud = year["cloud_forecast"]
    assert cloud.min() >= 0 and cloud.max() <= 1
    assert cloud[:, winter].mean() > cloud[:, summer].mean() + 0.1, "winter is not cloudier"
    temperature = year["temperature_c"]
    jan, jul = day <= 31, (day >= 182) & (day <= 212)
    swing = temperature[:, jul].mean() - temperature[:, jan].mean()
    assert 12 < swing < 25, f"July minus January {swing:.1f} C"
    assert temperature.min() > -25 and temperature.max() < 42
    anomaly = year["anomaly"]
    outage, degraded = (anomaly == 1).mean(), (anomaly == 2).mean()
    assert 0.0025 < outage < 0.006, f"outage fraction {outage:.4f}, stated 0.004"
    assert 0.007 < degraded < 0.013, f"degraded fraction {degraded:.4f}, stated 0.01"
    assert not power[anomaly == 1].any(), "output during an outage"


def test_close_sites_share_clouds_far_sites_less() -> None:
    data = energy.generate(120, seed=5, start="2023-04-01", hours=24 * 120)
    hour = data["hour_of_year"][0] % 24
    noon = (hour >= 9) & (hour <= 13)
    index = data["power_kw"][:, noon] / np.maximum(data["clear_sky_kw"][:, noon], 1e-3)
    correlation = np.corrcoef(np.clip(index, 0, 1.5))
    lat, lon = data["latitude"].astype(float), data["longitude"].astype(float)
    dy = (lat[:, None] - lat[None]) * 110.57
    dx = (lon[:, None] - lon[None]) * 111.32 * np.cos(np.radians(50))
    distance = np.hypot(dx, dy)
    pairs = np.triu(np.ones_like(distance, dtype=bool), 1)
    close = correlation[pairs & (distance < 20)].mean()
    far = correlation[pairs & (distance > 100)].mean()
    assert close > far + 0.15, f"clear-sky index correlation: close {close:.3f}, far {far:.3f}"
    assert far > 0.2, f"far sites share no weather: {far:.3f}"


def _table(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daylight rows from the second day on: features, target (kW/kW), persistence.

    Features: clear-sky output per kW, cloud forecast, UTC hour. The day of year is left out on
    purpose: with one simulated year to learn from, it memorises that year's weather.
    """
    capacity = data["capacity_kw"][:, None]
    target = (data["power_kw"] / capacity)[:, 24:]
    persistence = (data["power_kw"] / capacity)[:, :-24]
    hour = np.broadcast_to(data["hour_of_year"][:, 24:], target.shape)
    features = np.stack(
        [
            (data["clear_sky_kw"] / capacity)[:, 24:],
            data["cloud_forecast"][:, 24:],
            hour % 24,
        ],
        axis=-1,
    )
    day = features[..., 0] > 0
    return features[day], target[day], persistence[day]


def test_cloud_forecast_with_clear_sky_beats_persistence_on_other_sites() -> None:
    x_train, y_train, _ = _table(energy.generate(30, seed=21))
    x_test, y_test, persistence = _table(energy.generate(20, seed=22))
    pick = np.random.default_rng(0).choice(len(y_train), 30_000, replace=False)
    model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=80, random_state=0)
    with threadpool_limits(1):  # the test machine is busy: one thread is the fastest
        model.fit(x_train[pick], y_train[pick])
    predicted = model.predict(x_test)

    trivial = np.abs(y_test - y_train.mean()).mean()
    persist = np.abs(y_test - persistence).mean()
    boosted = np.abs(y_test - predicted).mean()
    assert persist < 0.7 * trivial, f"nMAE persistence {persist:.4f}, constant {trivial:.4f}"
    assert boosted < 0.75 * persist, f"nMAE boosting {boosted:.4f}, persistence {persist:.4f}"
    assert boosted > 0.03, f"nMAE boosting {boosted:.4f}: the noise floor has gone"
    bright = y_test > 0.1  # percentage errors where output is more than 10 % of capacity
    mape_persist = np.mean(np.abs(persistence[bright] - y_test[bright]) / y_test[bright])
    mape_boosted = np.mean(np.abs(predicted[bright] - y_test[bright]) / y_test[bright])
    assert mape_boosted < 0.8 * mape_persist, (
        f"MAPE boosting {mape_boosted:.3f}, persistence {mape_persist:.3f}"
    )


def test_a_gpu_tier_shard_has_the_right_shapes() -> None:
    n = 600  # a year each: 5.3e6 hourly values per field, 2.6e7 in all
    data = energy.generate(n, seed=3)
    for name in SERIES:
        assert data[name].shape == (n, energy.HOURS_PER_YEAR) and data[name].dtype == np.float32
    for name in SITE:
        assert data[name].shape == (n,) and data[name].dtype == np.float32
    assert data["hour_of_year"].shape == (n, energy.HOURS_PER_YEAR)
    assert np.isfinite(data["power_kw"]).all() and np.isfinite(data["temperature_c"]).all()


def test_shards_round_trip(tmp_path: Path) -> None:
    data = energy.generate(6, seed=1, hours=48)
    shards.write(data, tmp_path / "pv", rows_per_shard=4)
    back = shards.read(tmp_path / "pv")
    assert sorted(back) == sorted(data)
    for name in data:
        assert back[name].dtype == data[name].dtype and np.array_equal(back[name], data[name])
