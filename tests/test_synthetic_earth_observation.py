"""The cloud-segmentation generator (CloudSEN12 stand-in): determinism, physics, learnability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from aifkit.course.synthetic import earth_observation as eo
from aifkit.course.synthetic import shards

FIELDS = {
    "images": np.uint16,
    "masks": np.uint8,
    "true_masks": np.uint8,
    "land_cover": np.uint8,
    "sun_zenith_deg": np.float32,
    "sun_azimuth_deg": np.float32,
}
BLUE, RED, NIR, CIRRUS, SWIR = (eo.BANDS.index(b) for b in ("B2", "B4", "B8", "B10", "B11"))


@pytest.fixture(scope="module")
def train() -> dict[str, np.ndarray]:
    return eo.generate(120, seed=1)


@pytest.fixture(scope="module")
def held_out() -> dict[str, np.ndarray]:
    return eo.generate(120, seed=2)


def reflectance(data: dict[str, np.ndarray], band: int) -> np.ndarray:
    return data["images"][:, band].astype(np.float32) / eo.REFLECTANCE_SCALE


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float((predicted & truth).sum() / max(1, (predicted | truth).sum()))


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    """Does a seed fix every array (values and dtype), and does another seed change them?"""
    first, again, other = (eo.generate(6, seed=s) for s in (7, 7, 8))
    assert set(first) == set(FIELDS)
    for name, dtype in FIELDS.items():
        assert first[name].dtype == dtype, (name, first[name].dtype)
        assert len(first[name]) == 6, name
        assert np.array_equal(first[name], again[name]), name
    assert not np.array_equal(first["images"], other["images"])
    assert not np.array_equal(first["masks"], other["masks"])


def test_options_shape_and_validation() -> None:
    """Do size and cloud_fraction act, and are impossible options refused?"""
    small = eo.generate(3, seed=0, size=32)
    assert small["images"].shape == (3, len(eo.BANDS), 32, 32)
    assert small["masks"].shape == (3, 32, 32)
    assert eo.generate(0, seed=0)["images"].shape == (0, len(eo.BANDS), 64, 64)
    cloudy = [
        np.isin(eo.generate(60, seed=5, cloud_fraction=f)["true_masks"], (eo.THICK, eo.THIN)).mean()
        for f in (0.2, 0.6)
    ]
    assert cloudy[0] + 0.15 < cloudy[1], f"cloud cover at cloud_fraction 0.2 vs 0.6: {cloudy}"
    clean = eo.generate(4, seed=5, label_noise=0.0)
    assert np.array_equal(clean["masks"], clean["true_masks"])
    for bad in ({"cloud_fraction": 1.0}, {"label_noise": -0.1}, {"size": 2}):
        with pytest.raises(ValueError):
            eo.generate(2, seed=0, **bad)  # type: ignore[arg-type]


def test_class_fractions_label_noise_and_bounds(train: dict[str, np.ndarray]) -> None:
    """Are class and land-cover fractions plausible, label noise rare and only at boundaries?"""
    truth, masks = train["true_masks"], train["masks"]
    fractions = np.bincount(truth.ravel(), minlength=4) / truth.size
    for cls, (low, high) in enumerate([(0.35, 0.65), (0.12, 0.35), (0.08, 0.3), (0.04, 0.2)]):
        assert low < fractions[cls] < high, f"{eo.CLASSES[cls]}: {fractions[cls]:.3f}"
    cover = np.bincount(train["land_cover"].ravel(), minlength=5) / truth.size
    assert cover[eo.VEGETATION] == cover.max(), f"land cover fractions {cover.round(3)}"
    assert (cover > 0.04).all(), f"land cover fractions {cover.round(3)}"
    clear_tiles = np.isin(truth, (eo.THICK, eo.THIN)).mean(axis=(1, 2)) == 0
    assert 0.05 < clear_tiles.mean() < 0.35, f"share of cloud-free tiles {clear_tiles.mean():.2f}"

    wrong = masks != truth
    assert 0.02 < wrong.mean() < 0.08, f"label noise {wrong.mean():.4f}"
    padded = np.pad(truth, ((0, 0), (1, 1), (1, 1)), mode="edge")
    centre = padded[:, 1:-1, 1:-1]
    at_boundary = np.zeros_like(wrong)
    for rows, cols in ((slice(None, -2), slice(1, -1)), (slice(2, None), slice(1, -1))):
        at_boundary |= padded[:, rows, cols] != centre
    for rows, cols in ((slice(1, -1), slice(None, -2)), (slice(1, -1), slice(2, None))):
        at_boundary |= padded[:, rows, cols] != centre
    assert not (wrong & ~at_boundary).any(), "a label changed away from any class boundary"

    images = train["images"]
    assert images.min() >= 1 and images.max() < 13000, (images.min(), images.max())
    zenith, azimuth = train["sun_zenith_deg"], train["sun_azimuth_deg"]
    assert zenith.min() >= 20 and zenith.max() <= 60 and 0 <= azimuth.min() < azimuth.max() < 360


def test_spectral_signatures(train: dict[str, np.ndarray]) -> None:
    """Do vegetation, water, snow, clouds, cirrus and shadows have their physical signatures?"""
    truth, cover = train["true_masks"], train["land_cover"]
    blue, red, nir = (reflectance(train, b) for b in (BLUE, RED, NIR))
    cirrus, swir = reflectance(train, CIRRUS), reflectance(train, SWIR)
    ndvi = (nir - red) / (nir + red)
    clear = truth == eo.CLEAR
    vegetation, water = clear & (cover == eo.VEGETATION), clear & (cover == eo.WATER)
    snow = clear & (cover == eo.SNOW)
    thick = truth == eo.THICK
    assert np.median(ndvi[vegetation]) > 0.6 > 0.0 > np.median(ndvi[water]), (
        f"NDVI vegetation {np.median(ndvi[vegetation]):.2f}, water {np.median(ndvi[water]):.2f}"
    )
    assert np.median(nir[water]) < 0.04 and np.median(swir[water]) < 0.02
    # snow: as bright as cloud in the visible, far darker in SWIR-1
    assert np.median(blue[snow]) > 0.6 and np.median(blue[thick]) > 0.4
    assert np.percentile(swir[snow], 95) < np.percentile(swir[thick], 5), (
        f"SWIR-1 snow p95 {np.percentile(swir[snow], 95):.3f}, "
        f"thick cloud p5 {np.percentile(swir[thick], 5):.3f}"
    )
    # the cirrus band: dark over the ground (water vapour), bright over thick (high) cloud
    assert np.median(cirrus[clear]) < 0.005 < 0.02 < np.median(cirrus[thick]), (
        f"B10 clear {np.median(cirrus[clear]):.4f}, thick cloud {np.median(cirrus[thick]):.4f}"
    )
    # shadows: darker than the same vegetation in sunlight, in NIR
    shaded_vegetation = (truth == eo.SHADOW) & (cover == eo.VEGETATION)
    assert np.median(nir[shaded_vegetation]) < 0.6 * np.median(nir[vegetation])


def test_shadows_fall_away_from_the_sun(train: dict[str, np.ndarray]) -> None:
    """Do clouds moved away from the sun cover more shadow than clouds moved towards it?

    Not in every tile (shadows of clouds outside the tile, shadows leaving it): chance is 0.5."""
    truth = train["true_masks"]
    size = truth.shape[-1]
    away = np.radians(train["sun_azimuth_deg"].astype(np.float64) + 180.0)
    agree = []
    for tile in range(len(truth)):
        cloud, shadow = truth[tile] == eo.THICK, truth[tile] == eo.SHADOW
        if cloud.sum() < 50 or shadow.sum() < 50:
            continue
        covered = {}
        for sign in (1, -1):  # image rows grow southwards, columns eastwards
            covered[sign] = 0
            for reach in range(4, 40, 4):
                row = round(-sign * reach * float(np.cos(away[tile])))
                col = round(sign * reach * float(np.sin(away[tile])))
                moved = np.zeros_like(cloud)
                rows_to = slice(max(row, 0), size + min(row, 0))
                cols_to = slice(max(col, 0), size + min(col, 0))
                rows_from = slice(max(-row, 0), size + min(-row, 0))
                cols_from = slice(max(-col, 0), size + min(-col, 0))
                moved[rows_to, cols_to] = cloud[rows_from, cols_from]
                covered[sign] += int((moved & shadow).sum())
        agree.append(covered[1] > covered[-1])
    assert len(agree) > 30 and np.mean(agree) > 0.7, f"{np.mean(agree):.2f} of {len(agree)} tiles"


def test_threshold_baseline_and_gradient_boosting(
    train: dict[str, np.ndarray], held_out: dict[str, np.ndarray]
) -> None:
    """On a held-out seed: does a blue threshold reach a moderate cloud IoU but call snow cloud,
    and does per-pixel gradient boosting on the six bands beat it clearly?"""
    cloud_train = np.isin(train["masks"], (eo.THICK, eo.THIN)).ravel()
    cloud_test = np.isin(held_out["masks"], (eo.THICK, eo.THIN)).ravel()
    trivial = iou(np.ones_like(cloud_test), cloud_test)
    blue_train, blue_test = reflectance(train, BLUE).ravel(), reflectance(held_out, BLUE).ravel()
    threshold = max(np.arange(0.10, 0.60, 0.01), key=lambda t: iou(blue_train > t, cloud_train))
    threshold_iou = iou(blue_test > threshold, cloud_test)
    snow = ((held_out["land_cover"] == eo.SNOW) & (held_out["true_masks"] == eo.CLEAR)).ravel()
    threshold_snow = float((blue_test > threshold)[snow].mean())
    assert trivial + 0.2 < threshold_iou < 0.85, f"IoU: trivial {trivial:.3f}, {threshold_iou:.3f}"
    assert threshold_snow > 0.8, f"threshold calls {threshold_snow:.2f} of clear snow cloud"

    def pixels(data: dict[str, np.ndarray]) -> np.ndarray:
        return data["images"].transpose(0, 2, 3, 1).reshape(-1, len(eo.BANDS)).astype(np.float32)

    rng = np.random.default_rng(0)
    fit_rows = rng.choice(cloud_train.size, 30_000, replace=False)
    test_rows = rng.choice(cloud_test.size, 100_000, replace=False)
    with threadpool_limits(1):  # a busy 2-core runner: OpenMP threads only contend
        model = HistGradientBoostingClassifier(max_iter=60, random_state=0)
        model.fit(pixels(train)[fit_rows], cloud_train[fit_rows])
        predicted = model.predict(pixels(held_out)[test_rows]).astype(bool)
    model_iou = iou(predicted, cloud_test[test_rows])
    model_snow = float(predicted[snow[test_rows]].mean())
    assert model_iou > threshold_iou + 0.1, f"IoU: boosting {model_iou:.3f}, {threshold_iou:.3f}"
    assert model_snow < 0.1, f"boosting calls {model_snow:.3f} of clear snow cloud"


def test_scale_a_gpu_shard() -> None:
    """Does one call make a shard of ~10**7 values (512 tiles) with the right shapes?"""
    data = eo.generate(512, seed=3)
    assert data["images"].shape == (512, len(eo.BANDS), 64, 64)
    assert data["images"].size > 10**7
    for name, dtype in FIELDS.items():
        assert data[name].dtype == dtype and len(data[name]) == 512, name
    cloudy = np.isin(data["true_masks"], (eo.THICK, eo.THIN)).mean()
    assert 0.2 < cloudy < 0.55, f"cloud share {cloudy:.3f}"


def test_shards_round_trip(tmp_path: Path) -> None:
    """Does a small set survive shards.write/read unchanged?"""
    data = eo.generate(10, seed=4, size=16)
    shards.write(data, tmp_path / "eo", rows_per_shard=4)
    back = shards.read(tmp_path / "eo")
    assert set(back) == set(data)
    for name, array in data.items():
        assert back[name].dtype == array.dtype and np.array_equal(back[name], array), name
