"""Capstone f02 (clouds in multispectral tiles): the task module and the calibration of its target.

The reference solution (the notebook's ``train_model`` answer cell) must reach ``TARGET`` with a
margin on every held-out seed below; the given baseline, constant predictors and a model that
memorised the visible validation tiles must miss it on every one. The hidden test's literal
threshold must equal ``TARGET.threshold``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from aifkit.course.capstone import earth_observation as task
from aifkit.course.synthetic import earth_observation as eo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "courses/f02-space-earth-observation/f02-space-earth-observation.ipynb"
HELD_OUT_SEEDS = (11, 22, 33, 44, 55)
HELD_OUT_SCENES = 32  # as the hidden test
TRAIN_SCENES, VAL_SCENES = 64, 24  # cpu-tiny
MARGIN = 0.02


def _cells() -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return cells


def _cell(grade_id: str) -> str:
    for cell in _cells():
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            source = cell["source"]
            return source if isinstance(source, str) else "".join(source)
    raise AssertionError(f"no cell {grade_id}")


class Constant:
    def __init__(self, value: bool) -> None:
        self.value = value

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), *images.shape[-2:]), self.value)


class Memoriser:
    """Knows the visible validation tiles' masks by heart; the baseline for anything else."""

    def __init__(self, seen: dict[str, np.ndarray], fallback: task.ThresholdRule) -> None:
        self.table = {
            hashlib.sha256(image.tobytes()).hexdigest(): task.cloud_mask(mask)
            for image, mask in zip(seen["images"], seen["masks"], strict=True)
        }
        self.fallback = fallback

    def predict(self, images: np.ndarray) -> np.ndarray:
        guess = self.fallback.predict(images)
        for i, image in enumerate(images):
            known = self.table.get(hashlib.sha256(image.tobytes()).hexdigest())
            if known is not None:
                guess[i] = known
        return guess


@pytest.fixture(scope="module")
def sets() -> dict[str, dict[str, np.ndarray]]:
    return {
        "train": task.make_tiles(TRAIN_SCENES, seed=1),
        "val": task.make_tiles(VAL_SCENES, seed=2),
        **{f"held{seed}": task.make_tiles(HELD_OUT_SCENES, seed=seed) for seed in HELD_OUT_SEEDS},
    }


@pytest.fixture(scope="module")
def reference(sets: dict[str, dict[str, np.ndarray]]) -> Any:
    """The notebook's solution of ``train_model``, trained as at cpu-tiny."""
    namespace: dict[str, Any] = {
        "np": np,
        "torch": torch,
        "task": task,
        "DEVICE": torch.device("cpu"),
        "WIDTH": 8,
        "EPOCHS": 10,
        "BATCH": 32,
    }
    threads = torch.get_num_threads()
    try:
        exec(_cell("f02-train-model"), namespace)  # the source notebook's answer cell
        return namespace["train_model"](sets["train"], seed=0)
    finally:
        torch.set_num_threads(threads)


def _held(sets: dict[str, dict[str, np.ndarray]], model: Any) -> list[float]:
    return [
        task.score(model.predict(sets[f"held{s}"]["images"]), sets[f"held{s}"]["masks"])
        for s in HELD_OUT_SEEDS
    ]


def test_reference_meets_target_with_margin(
    sets: dict[str, dict[str, np.ndarray]], reference: Any
) -> None:
    scores = _held(sets, reference)
    assert min(scores) >= task.TARGET.threshold + MARGIN, scores


def test_baseline_constant_memoriser_miss_target(sets: dict[str, dict[str, np.ndarray]]) -> None:
    baseline = task.train_baseline(sets["train"])
    models = {
        "baseline": baseline,
        "all cloud": Constant(True),
        "all clear": Constant(False),
        "memoriser": Memoriser(sets["val"], baseline),
    }
    memorised = models["memoriser"].predict(sets["val"]["images"])
    assert task.score(memorised, sets["val"]["masks"]) == 1.0, "it knows the validation tiles"
    for name, model in models.items():
        scores = _held(sets, model)
        assert all(not task.TARGET.met(s) for s in scores), (name, scores)
    baseline_scores = _held(sets, baseline)
    assert task.TARGET.baseline is not None
    assert abs(float(np.mean(baseline_scores)) - task.TARGET.baseline) < 0.03, baseline_scores


def test_hidden_test_states_the_target_literally() -> None:
    source = _cell("f02-model-held-out")
    hidden = source.split("### BEGIN HIDDEN TESTS")[1]
    (threshold,) = re.findall(r"held_score >= ([0-9.]+)", hidden)
    assert float(threshold) == task.TARGET.threshold
    (seed,) = re.findall(r"make_tiles\(\d+, seed=([0-9_]+)\)\nheld_score", hidden)
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert text.count(seed) == 1, f"the held-out seed {seed} must appear only in the hidden test"
    assert int(seed) not in (1, 2, *HELD_OUT_SEEDS)


def test_notebook_metadata_names_baseline_and_held_out() -> None:
    meta = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["metadata"]["aifkit"]
    assert meta["needs"] == ["slurm"]
    assert list(meta["capstone"]["baseline"]) == ["f02-train-model"]
    assert "train_baseline" in meta["capstone"]["baseline"]["f02-train-model"]
    assert meta["capstone"]["held_out"] == ["f02-model-held-out"]


def test_tile_scenes_keeps_pixels_and_scenes() -> None:
    scenes = eo.generate(3, seed=4, size=64)
    tiles = task.tile_scenes(scenes, 32)
    assert tiles["images"].shape == (12, 6, 32, 32) and tiles["masks"].shape == (12, 32, 32)
    assert list(tiles["scene"]) == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_array_equal(tiles["images"][5], scenes["images"][1, :, :32, 32:])
    np.testing.assert_array_equal(tiles["masks"][7], scenes["masks"][1, 32:, 32:])
    with pytest.raises(ValueError):
        task.tile_scenes(scenes, 24)


def test_iou_and_score_edge_cases() -> None:
    empty, full = np.zeros((2, 4, 4), bool), np.ones((2, 4, 4), bool)
    assert task.iou(empty, empty) == 1.0
    assert task.iou(empty, full) == 0.0 and task.iou(full, empty) == 0.0
    a = np.array([[1, 1, 0], [0, 0, 0]], bool)
    b = np.array([[1, 0, 0], [1, 0, 0]], bool)
    assert task.iou(a, b) == pytest.approx(1 / 3)
    masks = np.array([[eo.CLEAR, eo.THICK, eo.THIN, eo.SHADOW]], np.uint8)
    assert task.score(np.array([[False, True, True, False]]), masks) == 1.0
    with pytest.raises(ValueError):
        task.iou(np.zeros((2, 3)), np.zeros((3, 2)))


def test_dihedral_keeps_masks_on_their_pixels() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    y = x[:, 0] > 7
    seen = set()
    for k in range(8):
        xt, yt = task.dihedral(x, y, k)
        assert torch.equal(xt[:, 0] > 7, yt), k
        assert torch.equal(xt[:, 1] - xt[:, 0], torch.full_like(xt[:, 0], 16.0)), "bands untouched"
        seen.add(tuple(xt.flatten().tolist()))
    assert len(seen) == 8
    with pytest.raises(ValueError):
        task.dihedral(x, y, 8)


def test_baseline_rule_and_segmenter() -> None:
    train = task.make_tiles(8, seed=3)
    rule = task.train_baseline(train)
    assert 0.05 <= rule.threshold <= 0.5 and rule.band == task.BLUE
    assert rule.predict(train["images"]).shape == train["masks"].shape
    net = task.CloudNet(4)
    out = net(torch.from_numpy(task.network_input(train["images"][:2])))
    assert out.shape == (2, task.TILE, task.TILE)
    segmenter = task.Segmenter(net, batch=3)
    assert segmenter.predict(train["images"][:7]).shape == (7, task.TILE, task.TILE)
    assert segmenter.predict(train["images"][:0]).shape == (0, task.TILE, task.TILE)
    assert task.flops_per_tile(8) > task.flops_per_tile(4) > 0
