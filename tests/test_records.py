"""JSON records (grading jobs, results and outcomes, the validation state) are read validated:
a corrupt file is an error that names it and the bad key, never a KeyError or a silent default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aifkit.errors import NotebookError
from aifkit.grading import records
from aifkit.grading.course import GradingError
from aifkit.grading.prepare import GradingJob, NotebookSpec
from aifkit.grading.records import SubmissionResult, Suspicion
from aifkit.grading.worker import GradingOutcome
from aifkit.notebooks.state import State


def _result() -> SubmissionResult:
    return SubmissionResult(
        assignment="ps1",
        student="ada",
        status="flagged",
        message="1 suspicious construct",
        seconds=2.5,
        tests=[
            records.TestResult(
                notebook="p1", grade_id="t1", max_score=2, score=0.0, status="flagged"
            )
        ],
        findings=[
            Suspicion(notebook="p1", cell="answer", line=3, pattern="sys.exit", reason="exits")
        ],
    )


def test_grading_record_round_trips(tmp_path: Path) -> None:
    """Does a saved record load back equal, with its totals written for other readers?"""
    path = records.save(tmp_path, _result())
    written = json.loads(path.read_text())
    assert (written["score"], written["max_score"]) == (0.0, 2.0)
    assert written["findings"][0]["pattern"] == "sys.exit"
    assert records.load_all(tmp_path, "ps1") == [_result()]


def test_record_from_before_the_rename_still_loads(tmp_path: Path) -> None:
    """Does a finding saved under its old key 'construct' still load (records outlive upgrades)?"""
    path = records.save(tmp_path, _result())
    data = json.loads(path.read_text())
    data["findings"][0]["construct"] = data["findings"][0].pop("pattern")
    path.write_text(json.dumps(data))
    assert records.load_all(tmp_path, "ps1")[0].findings[0].pattern == "sys.exit"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: "{", "not valid JSON"),
        (lambda d: {k: v for k, v in d.items() if k != "status"}, "lacks status"),
        (lambda d: {**d, "status": "done"}, "status: got 'done'; use 'graded'"),
        (lambda d: {**d, "tests": [{**d["tests"][0], "score": "2"}]}, "tests[0].score: needs a"),
        (lambda d: {**d, "grade": 5}, "unknown key 'grade'"),
    ],
)
def test_corrupt_grading_record_names_file_and_key(
    tmp_path: Path, corrupt: object, message: str
) -> None:
    """Is a truncated, incomplete or mistyped record an error naming its file and key?"""
    path = records.save(tmp_path, _result())
    changed = corrupt(json.loads(path.read_text()))  # type: ignore[operator]
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(GradingError) as info:
        records.load_all(tmp_path, "ps1")
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert text.endswith("aifkit grade autograde ps1 --student ada"), "it says how to recover"


def test_grading_job_round_trips_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    """Does a job load back equal, and a corrupt job file fail naming it (not a KeyError)?"""
    job = GradingJob(
        assignment="ps1",
        student="ada",
        folder=str(tmp_path),
        specs={"p1": NotebookSpec(tests={"t1": 2.0}, manual={"m1": 1.0})},
        notebooks={"p1": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}},
        trusted=["abc"],
    )
    path = job.save()
    assert GradingJob.load(path) == job
    path.write_text(json.dumps({**json.loads(path.read_text()), "specs": {"p1": {"tests": []}}}))
    with pytest.raises(
        GradingError, match=rf"^{path}: specs\.p1\.tests: needs a mapping, got \[\]"
    ):
        GradingJob.load(path)
    absent = tmp_path / "absent.json"
    with pytest.raises(
        GradingError, match=rf"^{absent}: cannot read the grading job: No such file"
    ):
        GradingJob.load(absent)


def test_worker_outcome_round_trips_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    """Does a worker's outcome file load back, and one missing its result fail naming the file?"""
    outcome = GradingOutcome(result=_result(), notebooks={"p1": {"cells": []}})
    path = tmp_path / "ada.json"
    path.write_text(json.dumps(outcome.to_json()))
    assert GradingOutcome.load(path) == outcome
    path.write_text(json.dumps({"notebooks": {}}))
    with pytest.raises(GradingError, match=rf"^{path}: lacks result \(needs result\)$"):
        GradingOutcome.load(path)
    failed = GradingOutcome.failed("ps1", "bob", "cannot prepare")
    assert (failed.result.status, failed.result.message) == ("error", "cannot prepare")


def test_validation_state_round_trips(tmp_path: Path) -> None:
    """Does the validation state keep durations and fingerprints across a save and a load?"""
    path = tmp_path / "state.json"
    state = State.load(path)  # a missing file is an empty state
    state.record_pass(tmp_path / "a.ipynb", "cpu-tiny", 1.25, "abc")
    state.save()
    again = State.load(path).get(tmp_path / "a.ipynb", "cpu-tiny")
    assert (again.durations, again.passed_fingerprint) == ([1.25], "abc")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"records": {"a::cpu-tiny": {"durations": [1.0]', "not valid JSON"),
        ('{"records": {"a::cpu-tiny": {"durations": "fast"}}}', "durations: needs a list"),
        ('{"records": [], "version": 2}', "records: needs a mapping"),
    ],
)
def test_corrupt_validation_state_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    """Is a corrupt state file an error that names it and says it may be deleted?"""
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(NotebookError) as info:
        State.load(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert f"delete {path} to start afresh" in str(info.value)
