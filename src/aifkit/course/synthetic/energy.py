"""Photovoltaic generation of many sites, hourly for a year: a day-ahead forecasting capstone.

A sample is one PV site (a rooftop or a solar park); every per-site series is an array of shape
``(n_sites, hours)``, UTC, hour ``h`` covering ``[h, h+1)``. The default region is Luxembourg and
the Greater Region (latitude 49-51 N, longitude 5-7 E), one year (8760 hours, no 29 February).

Stands in for
    * PVGIS hourly time series (EU Joint Research Centre, Huld et al. 2012, "A new solar
      radiation database for estimating PV performance in Europe and Africa", Solar Energy 86;
      https://joint-research-centre.ec.europa.eu/pvgis-online-tool_en),
    * the solar track of GEFCom2014 (Hong et al. 2016, "Probabilistic energy forecasting: Global
      Energy Forecasting Competition 2014 and beyond", Int. J. Forecasting 32(3)): power of
      several sites with day-ahead weather forecasts as the features,
    * Open Power System Data (https://open-power-system-data.org), its time series and
      renewable power plants packages (measured PV output, plant capacities).

The physics, step by step (every step is a published model)
    1. Sun position from the day of year and UTC hour: declination and equation of time of
       Spencer (1971, "Fourier series representation of the position of the sun", Search 2(5)),
       hour angle and zenith as in the NOAA solar calculator; the angle of incidence on a panel
       of tilt and azimuth from Duffie & Beckman ("Solar Engineering of Thermal Processes",
       eq. 1.6.2).
    2. Clear-sky global horizontal irradiance of Haurwitz (1945):
       ``GHI = 1098 cos(z) exp(-0.059 / cos(z))`` W/m2.
    3. Clouds: ``GHI = GHI_clear (1 - 0.75 C**3.4)`` with cloud cover ``C`` in 0..1 (Kasten &
       Czeplak 1980, Solar Energy 24). ``C`` comes from a regional weather process: a latent
       Gaussian field, AR(1) in time, made of a synoptic part the whole region shares (memory of
       a few days), a mesoscale part on a 20 km grid whose correlation decays as
       ``exp(-(|dx| + |dy|) / 40 km)`` (separable exponential, interpolated bilinearly to the
       sites; memory of hours), and a local part per site (independent each hour); weights
       0.45, 0.40, 0.15 of the variance. Winter is cloudier than summer (forecast cover about
       0.85 in December-January, 0.55 in June-July), and the whole year's weather differs from
       seed to seed (a yield about +-8 % from one simulated year to another, as in reality).
    4. Diffuse/beam split of Erbs, Klein & Duffie (1982) from the clearness index, and the
       plane-of-array irradiance of the isotropic-sky model (Liu & Jordan 1963), albedo 0.2.
    5. Cell temperature of the NOCT model (Ross 1976; NOCT 45 C), power temperature
       coefficient -0.4 %/K relative to 25 C (a loss above, a small gain below, as in PVWatts,
       Dobos 2014), 14 % system losses, inverter efficiency 96 %, and clipping at the inverter's
       AC rating ``capacity_kw`` (the array is 1.05-1.35 times larger: ``dc_ac_ratio``).
    6. Anomalies (the "label noise" of this data set: no feature can predict them): whole days
       of outage (inverter trip, grid work: output exactly 0) on ``outage_rate`` of site-days
       (0.4 %), and degraded days (a string down, snow or heavy soiling: output times 0.3-0.8)
       on ``degraded_rate`` of site-days (1 %); ``anomaly`` says which hour was which.
       Then measurement noise: 2 % of the reading and 0.2 % of capacity, only while producing;
       the reading is clipped to ``[0, capacity_kw]``.

Fields (``n`` = ``n_sites``, ``T`` = ``hours``)
    ``power_kw``        float32 (n, T)  measured AC output, kW, averaged over the hour: the target
    ``clear_sky_kw``    float32 (n, T)  what the site would make under a clear sky (steps 1, 2,
                                        4, 5 with C = 0 and the actual temperature; no anomaly,
                                        no noise). Given, so learners need not compute it.
    ``cloud_forecast``  float32 (n, T)  day-ahead forecast of the cloud cover, 0..1 (as an NWP
                                        forecast interpolated to the site: it sees the synoptic
                                        and part of the mesoscale weather, never the local part;
                                        correlation with the truth in latent space 0.74)
    ``temperature_c``   float32 (n, T)  ambient air temperature, C (annual and daily cycle,
                                        warmer on clear summer afternoons, regional anomalies)
    ``anomaly``         int8    (n, T)  0 normal, 1 outage (output 0), 2 degraded
    ``hour_of_year``    int16   (n, T)  0..8759, UTC; the same row for every site (a read-only
                                        broadcast view: no memory per site). Day of year
                                        ``hour_of_year // 24 + 1``, UTC hour ``hour_of_year % 24``
    ``capacity_kw``     float32 (n,)    AC rating, kW: log-normal, median 10 kW, 2 kW..5 MW
    ``dc_ac_ratio``     float32 (n,)    DC array size over AC rating (1.05..1.35)
    ``latitude``        float32 (n,)    degrees north
    ``longitude``       float32 (n,)    degrees east
    ``tilt_deg``        float32 (n,)    panel tilt from horizontal, degrees (3..60)
    ``azimuth_deg``     float32 (n,)    panel azimuth, compass degrees (90 east, 180 south)

Structure to learn, and what a simple baseline misses
    Output is zero at night, about 5-6 times larger in June-July than in December-January, at
    most the capacity (high-DC/AC sites clip on clear summer noons). The capacity factor is
    12-14 % of the AC rating (900-1050 kWh per kWp of array a year; Luxembourg: about 950).
    Close sites share clouds, far sites much less (clear-sky index at midday, April-July:
    correlation about 0.67 below 20 km, 0.34 beyond 100 km). Measured on daylight hours of 20
    held-out sites of another seed (another year), in % of capacity (nMAE), learned on 30 sites:
    predicting the mean 21 %; persistence (the same hour yesterday: knows site and season, not
    the weather change) 12.4 %; a linear model on cloud forecast and hour 18 % (it misses that
    the cloud effect multiplies the clear-sky curve); the physics alone,
    ``clear_sky_kw * (1 - 0.75 cloud_forecast**3.4)``, 8.5 %; gradient boosting on
    ``clear_sky_kw / capacity_kw``, ``cloud_forecast`` and the hour 8.3 % (MAPE where output is
    above 10 % of capacity: 58 % persistence, 38 % boosting). Adding the day of year makes
    boosting worse on another seed (10 %): with one year to learn from, it memorises that
    year's weather; learn from several seeds or leave it out. Nobody predicts the local
    clouds, the anomalies or the noise: that is the floor.

Everything is drawn from ``np.random.default_rng(seed)``: the same seed gives the same bytes.
Time and memory grow linearly with ``n_sites * hours`` (sites are computed in chunks); the
regional weather grid is fixed by the region, not by the number of sites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aifkit.course.synthetic import require_shares

HOURS_PER_YEAR = 8760
SOLAR_CONSTANT = 1361.0  # W/m2 (Kopp & Lean 2011)
KM_PER_DEG_LAT = 110.57
KM_PER_DEG_LON_EQUATOR = 111.32

TEMPERATURE_COEFFICIENT = -0.004  # per K, relative to 25 C
NOCT_RISE_PER_W = (45.0 - 20.0) / 800.0  # K per W/m2 (NOCT 45 C at 800 W/m2, 20 C)
SYSTEM_LOSSES = 0.14
INVERTER_EFFICIENCY = 0.96
ALBEDO = 0.2

# weights of the latent cloud field (variances; they sum to 1)
SYNOPTIC_WEIGHT = 0.45
MESOSCALE_WEIGHT = 0.40
LOCAL_WEIGHT = 0.15
SYNOPTIC_PERSISTENCE = 0.985  # per hour: about three days of memory
MESOSCALE_PERSISTENCE = 0.90  # per hour: about ten hours
MAX_GRID_NODES = 3000
SITES_PER_CHUNK = 256


@dataclass(frozen=True)
class _Grid:
    """The mesoscale weather grid: node coordinates in km around the region's centre."""

    lat0: float
    lon0: float
    km_per_lon: float
    spacing_km: float
    rows: int
    cols: int


def hour_of_year_index(start: str, hours: int) -> np.ndarray:
    """Hours since 1 January 00:00 UTC of ``start``'s year, wrapped at 8760, as int16."""
    moment = np.datetime64(start, "h")
    year_start = np.datetime64(str(moment.astype("datetime64[Y]")), "h")
    offset = int((moment - year_start).astype(np.int64))
    return ((offset + np.arange(hours, dtype=np.int64)) % HOURS_PER_YEAR).astype(np.int16)


def sun_declination_and_time(hour_of_year: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Declination (rad) and equation of time (min) at the middle of each hour (Spencer 1971)."""
    day = hour_of_year // 24 + 1
    hour = hour_of_year % 24 + 0.5
    g = 2.0 * np.pi / 365.0 * (day - 1 + (hour - 12.0) / 24.0)
    declination = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    equation_of_time = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    return declination, equation_of_time


def hour_angle(hour_of_year: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Hour angle (rad, negative in the morning) at the middle of each hour (NOAA)."""
    _, equation_of_time = sun_declination_and_time(hour_of_year)
    solar_hours = hour_of_year % 24 + 0.5 + equation_of_time / 60.0 + longitude / 15.0
    return np.asarray(np.pi / 12.0 * (solar_hours - 12.0))


def solar_elevation_deg(
    hour_of_year: np.ndarray, latitude: np.ndarray, longitude: np.ndarray
) -> np.ndarray:
    """Sun elevation (degrees) at the middle of each hour; arguments broadcast together."""
    hour_of_year = np.asarray(hour_of_year)
    declination, _ = sun_declination_and_time(hour_of_year)
    phi = np.radians(latitude)
    omega = hour_angle(hour_of_year, np.asarray(longitude))
    cos_zenith = np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(
        omega
    )
    return np.asarray(np.degrees(np.arcsin(np.clip(cos_zenith, -1.0, 1.0))))


def haurwitz_ghi(cos_zenith: np.ndarray) -> np.ndarray:
    """Clear-sky global horizontal irradiance, W/m2 (Haurwitz 1945); 0 with the sun down."""
    up = cos_zenith > 0
    safe = np.where(up, cos_zenith, 1.0)
    return np.where(up, 1098.0 * safe * np.exp(-0.059 / safe), 0.0).astype(np.float32)


def erbs_diffuse_fraction(clearness: np.ndarray) -> np.ndarray:
    """Diffuse fraction of GHI from the clearness index (Erbs, Klein & Duffie 1982)."""
    kt = clearness
    middle = 0.9511 + kt * (-0.1604 + kt * (4.388 + kt * (-16.638 + kt * 12.336)))
    return np.where(kt <= 0.22, 1.0 - 0.09 * kt, np.where(kt <= 0.8, middle, 0.165))


def f32(values: np.ndarray) -> np.ndarray:
    """The values as float32 (the per-value arithmetic stays in single precision)."""
    return np.asarray(values, dtype=np.float32)


def _logistic(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _cloud_cover(latent: np.ndarray, season_shift: np.ndarray) -> np.ndarray:
    """Cloud cover 0..1 from the latent field: many clear and many overcast hours (U-shaped)."""
    u = _logistic(1.702 * (latent + season_shift))
    return np.clip(1.3 * u - 0.15, 0.0, 1.0).astype(np.float32)


def _season_shift(hour_of_year: np.ndarray) -> np.ndarray:
    """Latent shift towards clouds: largest in winter (Luxembourg: 75-80 % cover in December)."""
    day = hour_of_year // 24 + 1
    return np.asarray(0.6 + 0.45 * np.cos(2 * np.pi * (day - 10) / 365.0), dtype=np.float32)


def _make_grid(
    lat_range: tuple[float, float], lon_range: tuple[float, float], length_km: float
) -> _Grid:
    """A grid at half the correlation length, one node beyond the region on each side."""
    lat_mid = 0.5 * (lat_range[0] + lat_range[1])
    km_per_lon = KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat_mid))
    spacing = length_km / 2.0
    height = (lat_range[1] - lat_range[0]) * KM_PER_DEG_LAT
    width = (lon_range[1] - lon_range[0]) * km_per_lon
    rows = math.ceil(height / spacing) + 3
    cols = math.ceil(width / spacing) + 3
    if rows * cols > MAX_GRID_NODES:
        raise ValueError(
            f"the region needs {rows * cols} weather grid nodes (at most {MAX_GRID_NODES}): "
            "choose a smaller region or a longer weather_length_km"
        )
    lat0 = lat_range[0] - spacing / KM_PER_DEG_LAT
    lon0 = lon_range[0] - spacing / km_per_lon
    return _Grid(lat0, lon0, km_per_lon, spacing, rows, cols)


def _spatial_field(
    rng: np.random.Generator, hours: int, grid: _Grid, length_km: float
) -> np.ndarray:
    """Unit-variance fields (nodes, hours) with correlation exp(-(|dx| + |dy|) / length).

    The separable exponential: an AR(1) pass across the grid's columns, then one across its
    rows (Markov in each direction), so no covariance matrix is ever factorised. Node
    ``col * rows + row``.
    """
    rho = math.exp(-grid.spacing_km / length_km)
    scale = math.sqrt(1.0 - rho**2)
    field = rng.standard_normal((grid.cols, grid.rows, hours), dtype=np.float32)
    for j in range(1, grid.cols):
        field[j] = rho * field[j - 1] + scale * field[j]
    for i in range(1, grid.rows):
        field[:, i] = rho * field[:, i - 1] + scale * field[:, i]
    return field.reshape(grid.cols * grid.rows, hours)


def _ar1(shocks: np.ndarray, persistence: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 1 (time) of unit-variance ``shocks``.

    ``y[t] = p y[t-1] + sqrt(1 - p**2) e[t]``, ``y[0] = e[0]``, computed as a log-step prefix
    scan (Hillis & Steele): after the pass with offset k, y[t] sums p**j x[t-j] for j < 2k.
    """
    p = persistence.astype(np.float32)[:, None]
    y: np.ndarray = shocks * np.sqrt(1.0 - p**2)
    y[:, 0] = shocks[:, 0]
    k = 1
    while k < y.shape[1]:
        y[:, k:] = y[:, k:] + p**k * y[:, :-k]
        k *= 2
    return y


def _interpolation(
    grid: _Grid, latitude: np.ndarray, longitude: np.ndarray, length_km: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear nodes (n, 4) and weights (n, 4), the weights rescaled to keep unit variance."""
    y = (latitude - grid.lat0) * KM_PER_DEG_LAT / grid.spacing_km
    x = (longitude - grid.lon0) * grid.km_per_lon / grid.spacing_km
    i = np.clip(np.floor(y).astype(np.int64), 0, grid.rows - 2)
    j = np.clip(np.floor(x).astype(np.int64), 0, grid.cols - 2)
    fy, fx = y - i, x - j
    nodes = np.stack(
        [
            j * grid.rows + i,
            (j + 1) * grid.rows + i,
            j * grid.rows + i + 1,
            (j + 1) * grid.rows + i + 1,
        ],
        axis=1,
    )
    weights = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)
    corner = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    d = np.abs(corner[:, None] - corner[None]).sum(-1) * grid.spacing_km
    correlation = np.exp(-d / length_km)
    variance = np.einsum("nk,kl,nl->n", weights, correlation, weights)
    return nodes, weights / np.sqrt(variance)[:, None]


def _sites(
    rng: np.random.Generator,
    n: int,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Per-site constants: place, orientation, size."""
    latitude = rng.uniform(*lat_range, size=n)
    longitude = rng.uniform(*lon_range, size=n)
    flat = rng.random(n) < 0.1  # flat roofs, low east/west racks
    tilt = np.where(flat, rng.uniform(3.0, 15.0, n), np.clip(rng.normal(35.0, 8.0, n), 10.0, 60.0))
    azimuth = np.where(
        flat, rng.choice([90.0, 180.0, 270.0], n), np.clip(rng.normal(180.0, 30.0, n), 90.0, 270.0)
    )
    capacity = np.clip(np.exp(rng.normal(math.log(10.0), 1.2, n)), 2.0, 5000.0)
    dc_ac = rng.uniform(1.05, 1.35, n)
    return {
        "capacity_kw": capacity.astype(np.float32),
        "dc_ac_ratio": dc_ac.astype(np.float32),
        "latitude": latitude.astype(np.float32),
        "longitude": longitude.astype(np.float32),
        "tilt_deg": tilt.astype(np.float32),
        "azimuth_deg": azimuth.astype(np.float32),
    }


def _ac_power(
    ghi: np.ndarray,
    cos_zenith: np.ndarray,
    cos_incidence: np.ndarray,
    extraterrestrial: np.ndarray,
    tilt: np.ndarray,
    temperature: np.ndarray,
    dc_kw: np.ndarray,
    capacity: np.ndarray,
) -> np.ndarray:
    """AC power (kW) from GHI: Erbs split, isotropic plane of array, NOCT, derating, clipping."""
    up = cos_zenith > 0
    horizontal_top = np.maximum(extraterrestrial * cos_zenith, 1.0)
    clearness = np.clip(ghi / horizontal_top, 0.0, 1.0)
    diffuse = erbs_diffuse_fraction(clearness) * ghi
    beam_ratio = np.clip(np.maximum(cos_incidence, 0.0) / np.maximum(cos_zenith, 0.087), 0.0, 8.0)
    cos_tilt = np.cos(np.radians(tilt))
    plane = (
        (ghi - diffuse) * beam_ratio
        + diffuse * (1.0 + cos_tilt) / 2.0
        + ALBEDO * ghi * (1.0 - cos_tilt) / 2.0
    )
    plane = np.where(up, plane, 0.0)
    cell = temperature + NOCT_RISE_PER_W * plane
    dc = dc_kw * plane / 1000.0 * (1.0 + TEMPERATURE_COEFFICIENT * (cell - 25.0))
    ac = dc * (1.0 - SYSTEM_LOSSES) * INVERTER_EFFICIENCY
    return np.clip(ac, 0.0, capacity).astype(np.float32)


def generate(
    n_sites: int,
    *,
    seed: int,
    hours: int = HOURS_PER_YEAR,
    start: str = "2023-01-01",
    lat_range: tuple[float, float] = (49.0, 51.0),
    lon_range: tuple[float, float] = (5.0, 7.0),
    weather_length_km: float = 40.0,
    forecast_skill: float = 0.8,
    outage_rate: float = 0.004,
    degraded_rate: float = 0.01,
    noise: float = 0.02,
) -> dict[str, np.ndarray]:
    """Hourly PV output of ``n_sites`` sites over ``hours`` hours from ``start`` (UTC).

    ``forecast_skill`` is the correlation of the forecast's latent weather with the true one
    (synoptic and mesoscale parts); ``outage_rate`` and ``degraded_rate`` are fractions of
    site-days; ``noise`` is the relative measurement noise. See the module docstring.
    """
    if n_sites < 1 or hours < 1:
        raise ValueError(f"n_sites and hours must be at least 1, not {n_sites} and {hours}")
    require_shares(forecast_skill=forecast_skill)
    rng = np.random.default_rng(seed)
    sites = _sites(rng, n_sites, lat_range, lon_range)
    hour_index = hour_of_year_index(start, hours)

    # regional weather, shared by all sites: columns are [synoptic, forecast error of it,
    # temperature anomaly] then the mesoscale grid, then the grid of the forecast's errors
    grid = _make_grid(lat_range, lon_range, weather_length_km)
    nodes = grid.rows * grid.cols
    shocks = np.concatenate(
        [
            rng.standard_normal((3, hours), dtype=np.float32),
            _spatial_field(rng, hours, grid, weather_length_km),
            _spatial_field(rng, hours, grid, weather_length_km),
        ]
    )
    persistence = np.concatenate(
        [
            [SYNOPTIC_PERSISTENCE, 0.97, 0.995],
            np.full(nodes, MESOSCALE_PERSISTENCE),
            np.full(nodes, 0.85),
        ]
    )
    weather = _ar1(shocks, persistence)
    synoptic, synoptic_error = weather[0][None], weather[1][None]
    temperature_anomaly = 3.0 * weather[2][None]
    meso_grid, error_grid = weather[3 : 3 + nodes], weather[3 + nodes :]
    del shocks

    declination, equation_of_time = sun_declination_and_time(hour_index.astype(np.float64))
    day = hour_index // 24 + 1
    hour_mid = (hour_index % 24 + 0.5).astype(np.float64)
    extraterrestrial = (SOLAR_CONSTANT * (1 + 0.033 * np.cos(2 * np.pi * day / 365.0))).astype(
        np.float32
    )
    season = _season_shift(hour_index)
    summer = ((1.0 - np.cos(2 * np.pi * (day - 20) / 365.0)) / 2.0).astype(np.float32)
    mean_temperature = (9.8 - 8.5 * np.cos(2 * np.pi * (day - 20) / 365.0)).astype(np.float32)
    sin_dec = np.sin(declination)[None].astype(np.float32)
    cos_dec = np.cos(declination)[None].astype(np.float32)
    # hour angle = time part (UTC hour, equation of time) + site part (longitude)
    time_angle = np.pi / 12.0 * (hour_mid + equation_of_time / 60.0 - 12.0)
    cos_time, sin_time = f32(np.cos(time_angle))[None], f32(np.sin(time_angle))[None]
    # the daily temperature cycle peaks at 14:30 local solar time, the same decomposition
    heat_angle = 2 * np.pi * (hour_mid - 14.5) / 24.0
    cos_heat, sin_heat = f32(np.cos(heat_angle))[None], f32(np.sin(heat_angle))[None]

    nodes_of, weights_of = _interpolation(
        grid,
        sites["latitude"].astype(np.float64),
        sites["longitude"].astype(np.float64),
        weather_length_km,
    )
    first_day = hour_of_year_index(start, 1)[0] // 24
    day_of_series = (first_day + np.arange(hours)) // 24
    days = int(day_of_series[-1]) + 1
    a_syn, a_meso, a_loc = (math.sqrt(w) for w in (SYNOPTIC_WEIGHT, MESOSCALE_WEIGHT, LOCAL_WEIGHT))
    skill, miss = forecast_skill, math.sqrt(1.0 - forecast_skill**2)

    out = {
        name: np.empty((n_sites, hours), dtype=np.float32)
        for name in ("power_kw", "clear_sky_kw", "cloud_forecast", "temperature_c")
    }
    anomaly = np.zeros((n_sites, hours), dtype=np.int8)
    for lo in range(0, n_sites, SITES_PER_CHUNK):
        part = slice(lo, min(lo + SITES_PER_CHUNK, n_sites))
        m = part.stop - part.start
        lat = sites["latitude"][part].astype(np.float64)[:, None]
        lon = sites["longitude"][part].astype(np.float64)[:, None]
        tilt = sites["tilt_deg"][part][:, None]
        surface_azimuth = np.radians(sites["azimuth_deg"][part].astype(np.float64) - 180.0)[:, None]
        capacity = sites["capacity_kw"][part][:, None]
        dc_kw = capacity * sites["dc_ac_ratio"][part][:, None]

        # geometry: every angle is a time part plus a site part, so the (sites, hours) cosines
        # come from outer products (cos(a + b) = cos a cos b - sin a sin b), no trig per value
        cos_lon, sin_lon = f32(np.cos(np.radians(lon))), f32(np.sin(np.radians(lon)))
        cos_omega = cos_time * cos_lon - sin_time * sin_lon
        sin_omega = sin_time * cos_lon + cos_time * sin_lon
        phi, beta = np.radians(lat), np.radians(tilt.astype(np.float64))
        cos_zenith = f32(np.sin(phi)) * sin_dec + f32(np.cos(phi)) * cos_dec * cos_omega
        toward_south = np.sin(beta) * np.cos(surface_azimuth)
        toward_west = np.sin(beta) * np.sin(surface_azimuth)
        cos_incidence = (
            f32(np.cos(beta)) * cos_zenith
            + f32(toward_south * np.sin(phi)) * cos_dec * cos_omega
            - f32(toward_south * np.cos(phi)) * sin_dec
            + f32(toward_west) * cos_dec * sin_omega
        )
        del cos_omega, sin_omega

        # weather at the sites
        meso = np.zeros((m, hours), dtype=np.float32)
        error = np.zeros((m, hours), dtype=np.float32)
        for k in range(4):
            w = weights_of[part, k].astype(np.float32)[:, None]
            meso += w * meso_grid[nodes_of[part, k]]
            error += w * error_grid[nodes_of[part, k]]
        local = rng.standard_normal((m, hours), dtype=np.float32)
        latent = a_syn * synoptic + a_meso * meso + a_loc * local
        cloud = _cloud_cover(latent, season[None])
        forecast_latent = a_syn * (skill * synoptic + miss * synoptic_error) + a_meso * (
            skill * meso + miss * error
        )
        out["cloud_forecast"][part] = _cloud_cover(forecast_latent, season[None])
        del meso, error, local, latent, forecast_latent

        daily_phase = cos_heat * cos_lon - sin_heat * sin_lon  # local solar time - 14:30
        site_offset = (-0.6 * (lat - 50.0) + 0.7 * rng.standard_normal((m, 1))).astype(np.float32)
        daily_swing = (3.0 + 2.5 * summer)[None] * (1.2 - 0.7 * cloud)
        temperature = (
            mean_temperature[None]
            + temperature_anomaly
            + site_offset
            - 2.0 * summer[None] * (cloud - 0.6)
            + daily_swing * daily_phase
        ).astype(np.float32)
        out["temperature_c"][part] = temperature

        clear_ghi = haurwitz_ghi(cos_zenith)
        args = (
            cos_zenith,
            cos_incidence,
            extraterrestrial[None],
            tilt,
            temperature,
            dc_kw,
            capacity,
        )
        out["clear_sky_kw"][part] = _ac_power(clear_ghi, *args)
        ghi = clear_ghi * (1.0 - 0.75 * cloud**3.4)
        power = _ac_power(ghi, *args)
        del clear_ghi, ghi, cloud, cos_incidence, temperature

        # anomalies per site-day, then measurement noise while producing
        draw = rng.random((m, days))
        outage = draw < outage_rate
        degraded = (draw >= outage_rate) & (draw < outage_rate + degraded_rate)
        kind = np.where(outage, 1, np.where(degraded, 2, 0)).astype(np.int8)
        factor = np.where(outage, 0.0, np.where(degraded, rng.uniform(0.3, 0.8, (m, days)), 1.0))
        power *= factor.astype(np.float32)[:, day_of_series]
        kind = kind[:, day_of_series]
        producing = power > 0
        spread = noise * np.sqrt(power**2 + (0.1 * capacity) ** 2)  # of reading and of capacity
        measured = power + spread * rng.standard_normal((m, hours), dtype=np.float32)
        out["power_kw"][part] = np.where(producing, np.clip(measured, 0.0, capacity), 0.0)
        anomaly[part] = kind

    return {
        **out,
        "anomaly": anomaly,
        "hour_of_year": np.broadcast_to(hour_index, (n_sites, hours)),
        **sites,
    }
