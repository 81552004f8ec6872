"""Capstone f05-health-signals: its task module and the calibration of its held-out test."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from aifkit.course.capstone import ecg

NOTEBOOK = Path(__file__).parents[1] / "courses/f05-health-signals/f05-health-signals.ipynb"
N_TRAIN = 12_000  # the notebook's cpu-tiny training set
N_VALIDATION = 4_000


def _cells() -> list[dict]:
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    return [dict(cell, source="".join(cell.source)) for cell in nb.cells]


def _held_out_cell() -> str:
    held = [
        c["source"]
        for c in _cells()
        if "BEGIN HIDDEN TESTS" in c["source"] and "held_out" in c["source"]
    ]
    assert len(held) == 1, "one held-out test cell"
    return held[0]


def _held_out_seeds() -> tuple[int, int]:
    found = re.search(
        r"generate_patients\(\s*\d[\d_]*,\s*seeds=\((\d+),\s*(\d+)\)\)", _held_out_cell()
    )
    assert found, "the hidden test generates held-out patients with literal seeds"
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def train() -> dict[str, np.ndarray]:
    return ecg.generate_patients(N_TRAIN, seeds=ecg.TRAIN_SEEDS)


@pytest.fixture(scope="module")
def held_out_sets() -> list[dict[str, np.ndarray]]:
    """The hidden test's pair of seeds, and four other pairs of new patients."""
    hidden = _held_out_seeds()
    pairs = [hidden] + [(s, s + 50) for s in (9001, 9002, 9003, 9005)]
    return [ecg.generate_patients(8000, seeds=pair) for pair in pairs]


def test_hidden_threshold_is_the_target() -> None:
    cell = _held_out_cell()
    hidden = cell.split("### BEGIN HIDDEN TESTS")[1]
    literal = re.findall(r"held_score >= ([0-9.]+)", hidden)
    assert literal and float(literal[0]) == ecg.TARGET.threshold, (literal, ecg.TARGET.threshold)
    assert "TARGET" not in hidden, (
        "the threshold is a literal, not a module attribute a learner can change"
    )


def test_hidden_seeds_appear_nowhere_else() -> None:
    seeds = _held_out_seeds()
    others = [
        c["source"]
        for c in _cells()
        if "BEGIN HIDDEN TESTS" not in c["source"] or "held_out" not in c["source"]
    ]
    for seed in seeds:
        assert not any(str(seed) in text for text in others), (
            f"seed {seed} leaks outside the hidden test"
        )
    assert not set(seeds) & {*ecg.TRAIN_SEEDS, ecg.VALIDATION_SEED}


def test_metadata_names_the_answer_and_held_out_cells() -> None:
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    meta = nb.metadata["aifkit"]["capstone"]
    ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    assert set(meta["baseline"]) <= ids and set(meta["held_out"]) <= ids
    assert "train_baseline" in next(iter(meta["baseline"].values()))
    assert nb.metadata["aifkit"]["needs"] == ["slurm"]


def test_baseline_constant_memoriser_miss_the_target(
    train: dict[str, np.ndarray], held_out_sets: list[dict[str, np.ndarray]]
) -> None:
    baseline = ecg.train_baseline(train)
    val = ecg.generate(N_VALIDATION, seed=ecg.VALIDATION_SEED)
    seen = {row.tobytes(): label for row, label in zip(val["beats"], val["label"], strict=True)}

    def memorise(data: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([seen.get(row.tobytes(), 0) for row in data["beats"]])

    assert ecg.score(val["label"], memorise(val)) == pytest.approx(1.0), (
        "it did memorise validation"
    )
    for data in held_out_sets:
        for name, pred in (
            ("baseline", baseline.predict(data)),
            ("constant N", np.zeros(len(data["label"]), dtype=np.int64)),
            ("memoriser", memorise(data)),
        ):
            got = ecg.score(data["label"], pred)
            assert not ecg.TARGET.met(got), f"{name} reaches {got:.3f} on held-out patients"
    scores = [ecg.score(d["label"], baseline.predict(d)) for d in held_out_sets]
    assert abs(np.mean(scores) - ecg.TARGET.baseline) < 0.08, scores


def test_confusion_recall_and_score() -> None:
    counts = ecg.confusion([0, 0, 1, 2], [0, 1, 1, 0])
    assert counts.shape == (5, 5) and counts[0, 0] == 1 and counts[0, 1] == 1 and counts[2, 0] == 1
    recall = ecg.per_class_recall([0, 0, 1, 2], [0, 1, 1, 0])
    assert recall[:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(recall[3:]).all()
    assert ecg.score([0, 0, 1, 2], [0, 1, 1, 0]) == pytest.approx(0.5)
    assert ecg.score([0, 0, 0], [0, 0, 0]) == 1.0, "absent classes do not count"
    assert np.isnan(ecg.score([], []))
    with pytest.raises(ValueError):
        ecg.confusion([0, 1], [0])
    with pytest.raises(ValueError):
        ecg.confusion([0, 5], [0, 1])


def test_class_weights() -> None:
    w = ecg.class_weights(np.array([0] * 8 + [1] * 2))
    assert w[0] < w[1] and w[2] == 0 and w[:2].mean() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(4.0)


def test_generate_patients_keeps_patients_apart() -> None:
    data = ecg.generate_patients(501, seeds=(1, 2))
    assert len(data["label"]) == 501
    first = ecg.generate(251, seed=1)
    assert np.array_equal(data["beats"][:251], first["beats"]), "the first seed's beats come first"
    assert (
        np.array_equal(data["patient"][:251], first["patient"])
        and (data["patient"][251:] >= 100_000).all()
    )
    patients = set(ecg.generate(5000, seed=1)["patient"].tolist())
    assert set(ecg.generate(300, seed=3, patient_seed=1)["patient"].tolist()) <= patients, (
        "same patients"
    )
    assert not set(ecg.generate(300, seed=3)["patient"].tolist()) <= patients, "new patients"


def test_inputs_are_relative_to_the_patient() -> None:
    data = ecg.generate(600, seed=7)
    waves, rr = ecg.beat_inputs(data)
    assert waves.shape == (600, 2, 90) and waves.dtype == np.float32
    assert rr.shape == (600, ecg.N_RR) and rr.dtype == np.float32
    for pid in np.unique(data["patient"])[:3]:
        rows = data["patient"] == pid
        assert np.allclose(np.median(waves[rows, 1], axis=0), 0, atol=1e-5), (
            "channel 1: beat - patient median"
        )
        assert np.median(np.concatenate([rr[rows, 3], rr[rows, 4]])) == pytest.approx(1, abs=1e-5)
    net = ecg.make_cnn()
    out = net(torch.from_numpy(waves[:4]), torch.from_numpy(rr[:4]))
    assert out.shape == (4, ecg.N_CLASSES)


def test_forward_flops_of_a_linear_layer() -> None:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(3, 4)
            self.c = torch.nn.Conv1d(2, 5, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(y).sum() + self.c(x).sum()

    flops = ecg.forward_flops(Two(), torch.zeros(2, 2, 10), torch.zeros(2, 3))
    assert flops == 2 * 3 * 4 + 2 * (2 * 3) * (5 * 8)


def test_private_folder(tmp_path: Path) -> None:
    folder = ecg.private_folder(tmp_path / "project" / "data")
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode == ecg.PRIVATE_DIR_MODE and mode & 0o007 == 0
    assert ecg.open_to_others(folder) == []
    leak = folder / "leak.npy"
    leak.write_bytes(b"x")
    leak.chmod(0o644)
    assert ecg.open_to_others(folder) == [leak]
