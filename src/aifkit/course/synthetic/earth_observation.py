"""Cloud segmentation of multispectral satellite tiles: a seeded stand-in for CloudSEN12.

What it simulates
-----------------
A sample is one **tile**: a square of ``size x size`` pixels (default 64 x 64, at a ground
sampling distance of ``pixel_size_m`` = 60 m, the native grid of the cirrus band, so a tile covers
3.84 km) seen by a Sentinel-2 MultiSpectral Instrument as a Level-1C product: top-of-atmosphere
(TOA) reflectance in six bands, and a per-pixel cloud mask with the four classes of CloudSEN12.

It stands in for **CloudSEN12** (C. Aybar, L. Ysuhuaylas, J. Loja, K. Gonzales, F. Herrera,
L. Bautista, R. Yali, A. Flores, L. Diaz, N. Cuenca, W. Espinoza, F. Prudencio, V. Llactayo,
D. Montero, M. Sudmanns, D. Tiede, G. Mateo-Garcia, L. Gomez-Chova, 2022: "CloudSEN12, a global
dataset for semantic understanding of cloud and cloud shadow in Sentinel-2", *Scientific Data*
9, 782, https://doi.org/10.1038/s41597-022-01878-2) and the Sentinel-2 L1C tiles it is cut from
(ESA Sentinel-2 User Handbook, https://sentinel.esa.int/web/sentinel/user-guides/sentinel-2-msi).

Fields (first dimension: the tile)
----------------------------------
``images``      (n, 6, size, size) uint16: TOA reflectance x 10000 (digital number, DN) in the
                bands of ``BANDS``; reflectance = DN / 10000. (Products of processing baseline
                04.00 and later, 2022 on, add 1000 to every DN; this generator does not, like
                earlier products and CloudSEN12's harmonised arrays.) The bands, in this order,
                with their S2A central wavelengths and native resolutions:

                ====  =========  =========  ======  =====================================
                band  name       wavelength native  what it sees
                ====  =========  =========  ======  =====================================
                B2    blue       492 nm     10 m    haze, water; Rayleigh path radiance
                B3    green      560 nm     10 m    vegetation peak, water
                B4    red        665 nm     10 m    chlorophyll absorption
                B8    NIR        833 nm     10 m    leaf structure: vegetation bright
                B10   cirrus     1374 nm    60 m    water-vapour absorption: only high
                                                    clouds (cirrus) reach the sensor
                B11   SWIR-1     1614 nm    20 m    ice/snow absorb: snow dark, cloud bright
                ====  =========  =========  ======  =====================================

``masks``       (n, size, size) uint8: the *annotated* class per pixel, as CloudSEN12 codes it:
                0 clear, 1 thick cloud, 2 thin cloud, 3 cloud shadow. Carries label noise at
                class boundaries (see below): train and score on this, as with real labels.
``true_masks``  (n, size, size) uint8: the same classes before label noise (a real data set has
                no such field: it is here for documentation and tests).
``land_cover``  (n, size, size) uint8: the ground under the clouds: 0 water, 1 vegetation,
                2 bare soil, 3 urban, 4 snow/ice (``LAND_COVER``); for analysis, not a target.
``sun_zenith_deg``, ``sun_azimuth_deg``  (n,) float32: the sun's position (degrees; azimuth
                clockwise from north), as in every L1C tile's metadata; shadows fall away from
                the sun, ``h * tan(zenith)`` from their cloud (h: cloud-top height).

Structure it reproduces
-----------------------
* Land cover as spatially smooth random fields: an "elevation" field (water in the lowest
  part, snow on the highest in snowy tiles) and a land-use field split into vegetation, bare
  soil and urban, both Gaussian random fields made by filtering white noise in the Fourier
  domain; per-tile fractions vary (some tiles are all vegetation, some half water, three in ten
  have snow; ``snow_tile_rate``). Bare soil and urban brightness varies most between tiles
  (wet dark soil to bright sand).
* Spectral signatures of each surface (typical values from the USGS spectral library,
  Kokaly et al. 2017, https://doi.org/10.5066/F7RR1WDJ) with per-tile and per-pixel variation:
  vegetation has a high NDVI (NIR >> red), water is dark in NIR and SWIR, snow is bright in the
  visible and NIR but dark in SWIR-1 (ice absorbs at 1.6 um).
* Clouds as fractal fields: the liquid-water path of broken cloud fields has a power spectrum
  close to k^-5/3 in one dimension (Cahalan & Snider 1989, Remote Sens. Environ. 28, 95-107),
  i.e. k^-8/3 in two; a field with that spectrum is thresholded at the tile's cloud cover
  (Beta-distributed around ``cloud_fraction``; ``clear_tile_rate`` of the tiles are
  cloud-free), and the excess becomes the optical thickness tau. A cloud's reflectance is the
  two-stream result for a conservative, forward-scattering layer, R = (1-g) tau /
  (2 + (1-g) tau), g = 0.85 (e.g. Bohren 1987, Am. J. Phys. 55, 524), a bit lower in SWIR-1
  (droplets absorb), added to the surface seen through the cloud (adding method,
  (1-R)^2 rho / (1 - R rho)). Thick cloud (tau >= 8): bright in every band including SWIR-1;
  thin cloud (0.7 <= tau < 8, and cirrus): a semi-transparent blend with the ground.
* Cirrus: in ``cirrus_rate`` of the tiles, a high (10 km) ice-cloud layer with tau up to 3
  (labelled thin cloud from 0.3): nearly invisible in the visible, but it is above the water
  vapour, so it shows in B10 (1375 nm), where the ground and low clouds are absorbed away
  (two-way vapour transmittance above height z: exp(-k exp(-z / 2 km)), k = 3-5 per tile).
* Cloud shadows: each tile's cumulus layer has a cloud-top height (log-normal, median 1.2 km);
  the shadow is the cloud field moved by h tan(zenith) away from the sun (shadows of clouds
  outside the tile fall into it too). Shadowed ground keeps only the diffuse skylight (more of
  it in blue than in SWIR); pixels that keep less than a quarter of the direct sunlight are
  labelled shadow, unless cloud. Cirrus casts no shadow here.
* Atmosphere: Rayleigh optical depth from Hansen & Travis (1974, Space Sci. Rev. 16, 527),
  single-scattering path reflectance (blue haze), a per-tile aerosol optical depth
  (Angstrom exponent 1.3), two-way transmittance; sensor noise sqrt((``noise_std``)^2 +
  (0.005 rho)^2), rounding to DN.
* Label noise: annotators draw boundaries, and they wobble: at every pixel whose 4-neighbours
  carry another class, with probability ``label_noise`` the label becomes that of a random
  4-neighbour. With the defaults about 5 % of all labels differ from ``true_masks``, all of
  them at class boundaries.

Measured with the defaults (400 tiles, seed 11): 46 % clear, 24 % thick cloud, 18 % thin cloud,
12.5 % cloud shadow (true classes); land cover 53 % vegetation, 17 % bare soil, 11 % urban,
10 % snow, 10 % water; 5.0 % of the annotated labels differ from the true ones.

What a simple baseline misses
-----------------------------
Scores on a held-out seed (120 tiles of seed 2; models fitted on seed 1), cloud = thick or thin,
against the annotated (noisy) masks. Calling every pixel cloud: IoU 0.42. A brightness threshold
(cloud if blue reflectance > t, t = 0.18 tuned on the training seed), the oldest cloud test:
IoU 0.73; it finds thick clouds but calls every clear snow pixel cloud, misses a quarter of the
thin cloud (cirrus is nearly invisible in blue); bright sand sits near its threshold.
Gradient boosting (sklearn HistGradientBoostingClassifier) on the six bands of each pixel
learns the physics (snow is dark in SWIR-1, cirrus shows in B10, thin cloud lifts the
visible over dark ground): IoU 0.92, snow called cloud 0.8 % of the time; the label noise caps the IoU at about 0.94.
Four classes, per pixel: IoU clear 0.91, thick 0.89, thin 0.79, shadow 0.80. What is left is
at class edges and in shadows over dark ground (water looks like shadow pixel by pixel), where a
model that sees the neighbourhood and the sun geometry (a U-Net) is the next step.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from aifkit.course.synthetic import require_shares

BANDS: Final = ("B2", "B3", "B4", "B8", "B10", "B11")
BAND_NAMES: Final = ("blue", "green", "red", "NIR", "cirrus", "SWIR-1")
WAVELENGTH_NM: Final = (492.4, 559.8, 664.6, 832.8, 1373.5, 1613.7)
NATIVE_RESOLUTION_M: Final = (10, 10, 10, 10, 60, 20)
CLASSES: Final = ("clear", "thick cloud", "thin cloud", "cloud shadow")
CLEAR, THICK, THIN, SHADOW = 0, 1, 2, 3
LAND_COVER: Final = ("water", "vegetation", "bare soil", "urban", "snow")
WATER, VEGETATION, BARE, URBAN, SNOW = 0, 1, 2, 3, 4
REFLECTANCE_SCALE: Final = 10000

# Surface reflectance (rows: LAND_COVER; columns: BANDS), typical of the USGS library.
# B10 column: surface reflectance at 1375 nm before water-vapour absorption.
SURFACE_REFLECTANCE: Final = np.array(
    [
        [0.045, 0.040, 0.025, 0.015, 0.004, 0.005],  # water: dark in NIR and SWIR
        [0.030, 0.060, 0.035, 0.350, 0.080, 0.170],  # vegetation: red edge, NDVI ~ 0.8
        [0.100, 0.140, 0.190, 0.260, 0.280, 0.330],  # bare soil: rising towards SWIR
        [0.100, 0.110, 0.120, 0.180, 0.170, 0.200],  # urban: flat, grey
        [0.900, 0.880, 0.850, 0.750, 0.200, 0.080],  # snow: bright, but dark in SWIR-1
    ],
    dtype=np.float32,
)
# Cloud reflectance relative to the visible, per band: droplets absorb a little at 1.6 um.
CLOUD_SPECTRAL: Final = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.8], dtype=np.float32)
CIRRUS_SPECTRAL: Final = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.6], dtype=np.float32)
# Diffuse share of the ground's illumination (what a shadow keeps): skylight is blue.
DIFFUSE_SHARE: Final = np.array([0.40, 0.33, 0.28, 0.22, 0.20, 0.18], dtype=np.float32)
CIRRUS_BAND: Final = BANDS.index("B10")

ASYMMETRY_G: Final = 0.85  # cloud droplets' asymmetry parameter
THICK_TAU: Final = 8.0  # optical thickness from which a cloud hides the ground
THIN_TAU: Final = 0.7  # cumulus thinner than this is labelled clear
CIRRUS_THIN_TAU: Final = 0.3  # cirrus from this optical thickness on is labelled thin cloud
SHADOW_DIRECT: Final = 0.25  # shadow: direct sunlight below this fraction
CIRRUS_HEIGHT_KM: Final = 10.0
VAPOUR_SCALE_KM: Final = 2.0
MAX_SHADOW_PX: Final = 48  # shadow displacement is capped here (the cloud field's margin)
CHUNK_PIXELS: Final = 1 << 20  # tiles are generated in chunks of about this many pixels

Float32 = NDArray[np.float32]


def generate(
    n: int,
    *,
    seed: int,
    size: int = 64,
    pixel_size_m: float = 60.0,
    cloud_fraction: float = 0.4,
    clear_tile_rate: float = 0.15,
    cirrus_rate: float = 0.3,
    snow_tile_rate: float = 0.3,
    noise_std: float = 0.002,
    label_noise: float = 0.2,
) -> dict[str, np.ndarray]:
    """``n`` tiles of ``size`` x ``size`` pixels: images, masks and what lies beneath.

    ``cloud_fraction``: mean cloud cover (thick + thin, before shadows) of the cloudy tiles;
    ``clear_tile_rate``: share of cloud-free tiles; ``cirrus_rate``: share of tiles with a
    cirrus layer; ``snow_tile_rate``: share of tiles with snow; ``noise_std``: sensor noise in
    reflectance units at dark targets; ``label_noise``: probability that a boundary pixel takes
    a neighbour's label.
    """
    if n < 0 or size < 4:
        raise ValueError(f"need n >= 0 and size >= 4, not n={n}, size={size}")
    require_shares(
        cloud_fraction=cloud_fraction,
        clear_tile_rate=clear_tile_rate,
        cirrus_rate=cirrus_rate,
        snow_tile_rate=snow_tile_rate,
        label_noise=label_noise,
    )
    if not 0.0 < cloud_fraction < 1.0:
        raise ValueError(f"cloud_fraction must lie in (0, 1), not {cloud_fraction}")
    if noise_std < 0 or pixel_size_m <= 0:
        raise ValueError("noise_std must be >= 0 and pixel_size_m > 0")
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {
        "images": np.empty((n, len(BANDS), size, size), np.uint16),
        "masks": np.empty((n, size, size), np.uint8),
        "true_masks": np.empty((n, size, size), np.uint8),
        "land_cover": np.empty((n, size, size), np.uint8),
        "sun_zenith_deg": np.empty(n, np.float32),
        "sun_azimuth_deg": np.empty(n, np.float32),
    }
    chunk = max(1, CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        part = slice(start, min(n, start + chunk))
        tiles = _tiles(
            rng,
            part.stop - part.start,
            size=size,
            pixel_size_m=pixel_size_m,
            cloud_fraction=cloud_fraction,
            clear_tile_rate=clear_tile_rate,
            cirrus_rate=cirrus_rate,
            snow_tile_rate=snow_tile_rate,
            noise_std=noise_std,
            label_noise=label_noise,
        )
        for name, array in tiles.items():
            out[name][part] = array
    return out


def _spectral_fields(rng: np.random.Generator, n: int, size: int, amplitude: Float32) -> Float32:
    """Two independent stationary Gaussian fields per tile, (2, n, size, size), standardised.

    White complex noise shaped by ``amplitude`` (the square root of the power spectrum) in the
    Fourier domain; the inverse FFT's real and imaginary parts are independent fields.
    """
    coefficients = rng.standard_normal((n, size, size, 2), np.float32).view(np.complex64)[..., 0]
    coefficients *= amplitude
    fields = np.fft.ifft2(coefficients, axes=(-2, -1))
    pair = np.stack([fields.real, fields.imag]).astype(np.float32, copy=False)
    pair -= pair.mean(axis=(-2, -1), keepdims=True)
    pair *= 1.0 / (pair.std(axis=(-2, -1), keepdims=True) + np.float32(1e-6))
    return pair


def _frequencies(size: int) -> Float32:
    """Squared spatial frequency (cycles per pixel) on the FFT grid."""
    k = np.fft.fftfreq(size).astype(np.float32)
    return np.asarray(k[:, None] ** 2 + k[None, :] ** 2, np.float32)


def _gaussian_amplitude(size: int, length_px: float) -> Float32:
    """Spectral amplitude of a field with a Gaussian correlation of ``length_px`` pixels."""
    return np.asarray(
        np.exp(-(np.pi**2) * _frequencies(size) * np.float32(length_px**2)), np.float32
    )


def _fractal_amplitude(size: int, outer_px: float) -> Float32:
    """Spectral amplitude of a cloud field: power ~ k^-8/3 below an outer scale."""
    amplitude = (_frequencies(size) + np.float32(1.0 / outer_px**2)) ** np.float32(-2.0 / 3.0)
    amplitude[0, 0] = 0.0
    return amplitude.astype(np.float32)


def _quantile_per_tile(field: Float32, fraction: NDArray[np.floating[Any]]) -> Float32:
    """Per tile, the value below which ``fraction`` of the tile's pixels lie (n, 1, 1)."""
    n = field.shape[0]
    ordered = np.sort(field.reshape(n, -1), axis=1)
    count = ordered.shape[1]
    index = np.clip(np.round(fraction * count).astype(np.int64), 0, count - 1)
    threshold = np.take_along_axis(ordered, index[:, None], axis=1)[:, 0]
    threshold = np.where(fraction <= 0, -np.inf, np.where(fraction >= 1, np.inf, threshold))
    return threshold.astype(np.float32)[:, None, None]


def _land_cover(
    rng: np.random.Generator, n: int, size: int, pixel_size_m: float, snow_tile_rate: float
) -> tuple[NDArray[np.uint8], Float32]:
    """Land-cover classes (n, size, size) and the elevation field that placed water and snow."""
    elevation, land_use = _spectral_fields(
        rng, n, size, _gaussian_amplitude(size, 600.0 / pixel_size_m)
    )
    water = np.where(rng.random(n) < 0.35, rng.uniform(0.05, 0.5, n), 0.0).astype(np.float32)
    snow = np.where(rng.random(n) < snow_tile_rate, rng.uniform(0.15, 0.7, n), 0.0)
    snow = np.minimum(snow, 0.9 - water).astype(np.float32)
    # vegetation, bare soil, urban shares of the rest: mostly green, some arid, some towns
    shares = rng.dirichlet([3.0, 1.0, 0.6], n).astype(np.float32)
    cover = np.full((n, size, size), VEGETATION, np.uint8)
    veg_top = _quantile_per_tile(land_use, shares[:, 0])
    bare_top = _quantile_per_tile(land_use, shares[:, 0] + shares[:, 1])
    cover[land_use > veg_top] = BARE
    cover[land_use > bare_top] = URBAN
    cover[elevation < _quantile_per_tile(elevation, water)] = WATER
    cover[elevation > _quantile_per_tile(elevation, 1.0 - snow)] = SNOW
    return cover, elevation


def _rayleigh_depth(wavelength_um: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rayleigh optical depth of a standard atmosphere (Hansen & Travis 1974, eq. 2.29)."""
    w = wavelength_um
    return np.asarray(0.008569 * w**-4 * (1 + 0.0113 * w**-2 + 0.00013 * w**-4))


def _cloud_reflectance(tau: Float32) -> Float32:
    """Two-stream reflectance of a conservative scattering layer of optical thickness tau."""
    scaled = np.float32(1.0 - ASYMMETRY_G) * tau
    return (scaled / (np.float32(2.0) + scaled)).astype(np.float32)


def _tiles(
    rng: np.random.Generator,
    n: int,
    *,
    size: int,
    pixel_size_m: float,
    cloud_fraction: float,
    clear_tile_rate: float,
    cirrus_rate: float,
    snow_tile_rate: float,
    noise_std: float,
    label_noise: float,
) -> dict[str, np.ndarray]:
    """One chunk of tiles (all fields of ``generate``)."""
    f32 = np.float32
    # --- geometry and atmosphere, per tile ---
    zenith = rng.uniform(20.0, 60.0, n)
    northern = rng.random(n) < 0.7  # morning overpass: sun in the south-east (north in the south)
    azimuth = np.where(northern, rng.uniform(120.0, 165.0, n), rng.uniform(25.0, 70.0, n))
    cloud_top_km = np.clip(rng.lognormal(np.log(1.2), 0.4, n), 0.4, 4.0)
    aerosol_550 = rng.uniform(0.05, 0.4, n)
    vapour_k = rng.uniform(3.0, 5.0, n)  # two-way B10 absorption optical path from the ground
    mu_sun = np.cos(np.radians(zenith))

    wavelength = np.asarray(WAVELENGTH_NM) / 1000.0
    tau_rayleigh = _rayleigh_depth(wavelength)[None, :]
    tau_aerosol = aerosol_550[:, None] * (wavelength[None, :] / 0.55) ** -1.3
    g_aerosol, cos_scatter = 0.7, -mu_sun[:, None]  # nadir view: scattering angle 180 - zenith
    phase_rayleigh = 0.75 * (1 + cos_scatter**2)
    phase_aerosol = (1 - g_aerosol**2) / (1 + g_aerosol**2 - 2 * g_aerosol * cos_scatter) ** 1.5
    airmass = 1.0 / mu_sun[:, None] + 1.0
    path = (tau_rayleigh * phase_rayleigh + 0.95 * tau_aerosol * phase_aerosol) / (
        4.0 * mu_sun[:, None]
    )
    transmittance = np.exp(-(0.5 * tau_rayleigh + 0.2 * tau_aerosol) * airmass)

    def vapour(height_km: float | NDArray[np.float64]) -> NDArray[np.float64]:
        """Two-way B10 transmittance of the water vapour above ``height_km``."""
        return np.asarray(np.exp(-vapour_k * np.exp(-np.asarray(height_km) / VAPOUR_SCALE_KM)))

    path[:, CIRRUS_BAND] = 0.0  # the vapour absorbs the cirrus band's path radiance
    ground_b10, low_cloud_b10, cirrus_b10 = vapour(0.0), vapour(cloud_top_km), vapour(10.0)

    # --- the ground ---
    cover, _ = _land_cover(rng, n, size, pixel_size_m, snow_tile_rate)
    texture, vigour = _spectral_fields(rng, n, size, _gaussian_amplitude(size, 1.5))
    # per-tile brightness of each surface (season, soil moisture, roof materials): bare soil
    # and urban vary most (dark wet soil to bright desert sand), a common false positive
    spread = np.array([0.12, 0.12, 0.3, 0.3, 0.08])[None, :, None]
    common = rng.standard_normal((n, len(LAND_COVER), 1))
    per_band = rng.standard_normal((n, len(LAND_COVER), len(BANDS)))
    tile_gain = np.exp(spread * (common + 0.3 * per_band)).astype(f32)
    signature = SURFACE_REFLECTANCE[None] * tile_gain  # (n, classes, bands)
    tile_index = np.arange(n)[:, None, None]
    surface = np.moveaxis(signature[tile_index, cover], -1, 1)  # (n, bands, H, W)
    surface *= (1.0 + f32(0.08) * texture)[:, None]
    vegetation = (cover == VEGETATION)[:, None]
    vigour_gain = np.where(vegetation, np.exp(f32(0.15) * vigour)[:, None], f32(1.0))
    surface[:, 3:4] *= vigour_gain[:, 0:1]  # vigorous vegetation: more NIR, less red
    surface[:, 2:3] /= vigour_gain[:, 0:1]
    np.clip(surface, 0.002, 1.0, out=surface)

    # --- clouds: a fractal cumulus field with a margin for shadows, and a cirrus layer ---
    side = size + MAX_SHADOW_PX
    cumulus, cirrus = _spectral_fields(
        rng, n, side, _fractal_amplitude(side, 2000.0 / pixel_size_m)
    )
    cover_tile = rng.beta(3.0 * cloud_fraction, 3.0 * (1.0 - cloud_fraction), n)
    cover_tile = np.where(rng.random(n) < clear_tile_rate, 0.0, cover_tile).astype(f32)
    inside = cumulus[:, :size, :size]
    threshold = _quantile_per_tile(inside, 1.0 - cover_tile)
    thickness = rng.lognormal(np.log(20.0), 0.6, n).astype(f32)[:, None, None]
    tau_field = np.maximum(cumulus - threshold, 0.0) * thickness  # (n, side, side)
    has_cirrus = rng.random(n) < cirrus_rate
    cirrus_cover = np.where(has_cirrus, rng.uniform(0.2, 0.9, n), 0.0).astype(f32)
    cirrus_scale = rng.uniform(0.5, 2.0, n).astype(f32)[:, None, None]
    cirrus_inside = cirrus[:, :size, :size]
    cirrus_tau = np.minimum(
        np.maximum(cirrus_inside - _quantile_per_tile(cirrus_inside, 1.0 - cirrus_cover), 0.0)
        * cirrus_scale,
        f32(3.0),
    )

    # shadows: the cloud field moved by h tan(zenith) away from the sun (periodic field: the
    # source of a shadow within MAX_SHADOW_PX lies in the margin, not in the tile)
    reach_px = cloud_top_km * 1000.0 * np.tan(np.radians(zenith)) / pixel_size_m
    away = np.radians(azimuth + 180.0)
    shift_rows = np.clip(np.round(-reach_px * np.cos(away)), -MAX_SHADOW_PX, MAX_SHADOW_PX)
    shift_cols = np.clip(np.round(reach_px * np.sin(away)), -MAX_SHADOW_PX, MAX_SHADOW_PX)
    rows = (np.arange(size)[None, :] - shift_rows[:, None].astype(np.int64)) % side
    cols = (np.arange(size)[None, :] - shift_cols[:, None].astype(np.int64)) % side
    source_tau = tau_field[tile_index, rows[:, :, None], cols[:, None, :]]
    direct = np.exp(-source_tau / mu_sun.astype(f32)[:, None, None])
    lit = (
        DIFFUSE_SHARE[None, :, None, None]
        + (1.0 - DIFFUSE_SHARE)[None, :, None, None] * (direct[:, None])
    )
    ground = surface * lit

    # --- radiative transfer to the top of the atmosphere ---
    tau = tau_field[:, :size, :size]
    r_cloud = _cloud_reflectance(tau)[:, None] * CLOUD_SPECTRAL[None, :, None, None]
    through = (1.0 - r_cloud) ** 2 * ground / (1.0 - r_cloud * ground)
    b10 = CIRRUS_BAND
    r_cloud[:, b10] *= low_cloud_b10.astype(f32)[:, None, None]
    through[:, b10] *= ground_b10.astype(f32)[:, None, None]
    below = through + r_cloud
    r_cirrus = _cloud_reflectance(cirrus_tau)[:, None] * CIRRUS_SPECTRAL[None, :, None, None]
    r_cirrus[:, b10] *= cirrus_b10.astype(f32)[:, None, None]
    toa = (
        path.astype(f32)[:, :, None, None]
        + transmittance.astype(f32)[:, :, None, None]
        * (below * (1.0 - r_cirrus) ** 2 / (1.0 - r_cirrus * below))
        + r_cirrus
    )
    sigma = np.sqrt(f32(noise_std) ** 2 + (f32(0.005) * toa) ** 2)
    toa += sigma * rng.standard_normal(toa.shape, f32)
    images = np.clip(np.round(toa * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)

    # --- labels ---
    true_masks = np.full((n, size, size), CLEAR, np.uint8)
    true_masks[direct < SHADOW_DIRECT] = SHADOW
    true_masks[(tau >= THIN_TAU) | (cirrus_tau >= CIRRUS_THIN_TAU)] = THIN
    true_masks[tau >= THICK_TAU] = THICK
    masks = _wobble_boundaries(rng, true_masks, label_noise)
    return {
        "images": images,
        "masks": masks,
        "true_masks": true_masks,
        "land_cover": cover,
        "sun_zenith_deg": zenith.astype(f32),
        "sun_azimuth_deg": azimuth.astype(f32),
    }


def _wobble_boundaries(
    rng: np.random.Generator, labels: NDArray[np.uint8], rate: float
) -> NDArray[np.uint8]:
    """Labels as an annotator draws them: with probability ``rate`` a pixel takes the label of
    a random 4-neighbour (a change only where that neighbour's class differs: boundaries)."""
    padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    neighbours = np.stack(
        [padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]]
    )
    direction = rng.integers(0, 4, labels.shape, dtype=np.int8)
    chosen = np.take_along_axis(neighbours, direction[None].astype(np.intp), axis=0)[0]
    flip = rng.random(labels.shape, np.float32) < rate
    return np.where(flip, chosen, labels).astype(np.uint8)
