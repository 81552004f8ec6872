"""Capstone f02: cloud segmentation of multispectral tiles (the task, its metric and baseline).

Scenes of ``SCENE_SIZE`` pixels come from :mod:`aifkit.course.synthetic.earth_observation`
(Sentinel-2 L1C-like, six bands, CloudSEN12 classes); each scene is cut into tiles of ``TILE``
pixels, and every tile keeps the index of its scene, so a split by scene (here: by seed) never
puts two tiles of one scene on both sides. The target is the **cloud** class (thick or thin
cloud) and the metric is its intersection over union, pooled over every pixel of a set.

The given baseline is the oldest cloud test: a brightness threshold on the blue band, tuned on
the training tiles. It calls snow cloud, misses most cirrus and stumbles on bright sand.
:class:`CloudNet` is the small convolutional network the notebook and its training script share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from aifkit.course.capstone import Target
from aifkit.course.synthetic import earth_observation as eo

__all__ = [
    "CLOUD_CLASSES",
    "SCENE_SIZE",
    "TARGET",
    "TILE",
    "CloudNet",
    "Segmenter",
    "ThresholdRule",
    "cloud_mask",
    "dihedral",
    "iou",
    "make_tiles",
    "network_input",
    "score",
    "tile_scenes",
    "train_baseline",
]

SCENE_SIZE: Final = 64  # pixels of 60 m: a scene of 3.84 km
TILE: Final = 32  # each scene gives (SCENE_SIZE // TILE) ** 2 = 4 tiles
CLOUD_CLASSES: Final = (eo.THICK, eo.THIN)
BLUE: Final = eo.BANDS.index("B2")

# Measured with the reference CNN of the notebook (64 training scenes of seed 1, cpu-tiny) and
# the blue-threshold baseline, on held-out scenes of seeds the learner never sees.
TARGET: Final = Target(metric="cloud IoU", threshold=0.83, baseline=0.71)

Tiles = dict[str, np.ndarray]


class Model(Protocol):
    """What ``score`` grades: anything that turns images into boolean cloud masks."""

    def predict(self, images: np.ndarray) -> Any: ...


def tile_scenes(scenes: Mapping[str, np.ndarray], tile: int = TILE) -> Tiles:
    """Cut every scene of ``scenes`` (fields of ``eo.generate``) into ``tile`` x ``tile`` tiles.

    Returns ``images`` (m, bands, tile, tile), ``masks`` (m, tile, tile) and ``scene`` (m,): the
    index of the scene each tile came from (tiles of one scene are consecutive, row by row).
    """
    images, masks = np.asarray(scenes["images"]), np.asarray(scenes["masks"])
    n, bands, height, width = images.shape
    if tile < 1 or height % tile or width % tile:
        raise ValueError(f"tile {tile} must divide the scene size {height} x {width}")
    rows, cols = height // tile, width // tile
    cut = images.reshape(n, bands, rows, tile, cols, tile).transpose(0, 2, 4, 1, 3, 5)
    cut_masks = masks.reshape(n, rows, tile, cols, tile).transpose(0, 1, 3, 2, 4)
    return {
        "images": np.ascontiguousarray(cut.reshape(-1, bands, tile, tile)),
        "masks": np.ascontiguousarray(cut_masks.reshape(-1, tile, tile)),
        "scene": np.repeat(np.arange(n), rows * cols),
    }


def make_tiles(n_scenes: int, *, seed: int, tile: int = TILE) -> Tiles:
    """``n_scenes`` scenes of the generator with ``seed``, cut into tiles (one seed, one split)."""
    return tile_scenes(eo.generate(n_scenes, seed=seed, size=SCENE_SIZE), tile)


def cloud_mask(masks: np.ndarray) -> NDArray[np.bool_]:
    """True where the annotated class is thick or thin cloud."""
    return np.isin(np.asarray(masks), CLOUD_CLASSES)


def reflectance(images: np.ndarray) -> NDArray[np.float32]:
    """Top-of-atmosphere reflectance from the digital numbers (DN / 10000)."""
    return np.asarray(images, np.float32) / np.float32(eo.REFLECTANCE_SCALE)


def network_input(images: np.ndarray) -> NDArray[np.float32]:
    """What the network reads: log reflectance per band (a ratio of bands becomes a difference)."""
    return np.log(np.maximum(reflectance(images), np.float32(1e-4)))


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks, pooled over all pixels; 1.0 if both are empty."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    union = int(np.count_nonzero(p | t))
    return 1.0 if union == 0 else int(np.count_nonzero(p & t)) / union


def score(pred: np.ndarray, masks: np.ndarray) -> float:
    """The capstone's metric: IoU of the cloud class, ``pred`` (boolean) against class ``masks``."""
    return iou(np.asarray(pred, dtype=bool), cloud_mask(masks))


@dataclass(frozen=True)
class ThresholdRule:
    """The given baseline: cloud where one band's reflectance exceeds a threshold."""

    threshold: float
    band: int = BLUE

    def predict(self, images: np.ndarray) -> NDArray[np.bool_]:
        return np.asarray(reflectance(np.asarray(images)[:, self.band]) > self.threshold)


def train_baseline(train: Mapping[str, np.ndarray], band: int = BLUE) -> ThresholdRule:
    """The blue-brightness rule with the threshold (0.05 to 0.50) that maximises training IoU."""
    values = reflectance(np.asarray(train["images"])[:, band])
    truth = cloud_mask(train["masks"])
    candidates = np.round(np.arange(0.05, 0.505, 0.01), 2)
    scores = [iou(values > t, truth) for t in candidates]
    return ThresholdRule(float(candidates[int(np.argmax(scores))]), band)


def dihedral(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k``-th (0-7) of the 8 rotations/flips of images ``x`` (..., H, W) and masks ``y``.

    Rotate by ``k % 4`` quarter turns, then mirror left-right when ``k >= 4``: the same
    transform on both, so the mask stays on its pixels; the bands (dim -3) are never touched.
    """
    if not 0 <= k < 8:
        raise ValueError(f"k must be 0..7, not {k}")
    x, y = torch.rot90(x, k % 4, (-2, -1)), torch.rot90(y, k % 4, (-2, -1))
    return (x.flip(-1), y.flip(-1)) if k >= 4 else (x, y)


class CloudNet(torch.nn.Module):
    """A tiny multi-scale segmentation network: logits of "cloud" per pixel.

    Per pixel, two 1x1 convolutions mix the bands (the spectral tests a threshold rule cannot
    combine); a dilated 3x3 convolution sees a 5x5 neighbourhood, and a branch at a quarter of
    the resolution sees about 20 pixels (1.2 km) around: cloud texture, cloud edges, context.
    """

    def __init__(self, width: int = 8, bands: int = len(eo.BANDS)) -> None:
        super().__init__()
        conv, relu = torch.nn.Conv2d, torch.nn.ReLU
        self.norm = torch.nn.BatchNorm2d(bands)
        self.pixel = torch.nn.Sequential(
            conv(bands, width, 1), relu(), conv(width, width, 1), relu()
        )
        self.near = torch.nn.Sequential(conv(width, width, 3, padding=2, dilation=2), relu())
        self.far = torch.nn.Sequential(
            torch.nn.AvgPool2d(4),
            conv(width, width, 3, padding=1),
            relu(),
            torch.nn.Upsample(scale_factor=4),
        )
        self.head = conv(3 * width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a: torch.Tensor = self.pixel(self.norm(x))
        logits: torch.Tensor = self.head(torch.cat([a, self.near(a), self.far(a)], 1))
        return logits[:, 0]


def flops_per_tile(width: int = 8, tile: int = TILE, bands: int = len(eo.BANDS)) -> float:
    """Training FLOPs per tile of :class:`CloudNet`: 3 x (forward multiply-adds x 2)."""
    per_pixel = bands * width + width * width + 9 * width * width + 3 * width
    quarter = 9 * width * width / 16  # the far branch runs at a quarter of the resolution per side
    return 3.0 * 2.0 * (per_pixel + quarter) * tile * tile


@dataclass
class Segmenter:
    """A trained :class:`CloudNet` with ``predict(images) -> bool masks`` (cloud where logit > 0)."""

    net: CloudNet
    batch: int = 256

    def predict(self, images: np.ndarray) -> NDArray[np.bool_]:
        self.net.eval()
        device = next(self.net.parameters()).device
        x = network_input(images)
        parts = [np.zeros((0, *x.shape[-2:]), bool)]
        with torch.no_grad():
            for start in range(0, len(x), self.batch):
                logits = self.net(torch.from_numpy(x[start : start + self.batch]).to(device))
                parts.append((logits > 0).cpu().numpy())
        return np.concatenate(parts)
