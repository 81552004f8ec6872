"""Measure the similarity report on 200 learners: fingerprints against plain text comparison.

Each synthetic learner's answer is 12 code cells drawn (seeded) from the course's own solution
notebooks, so the code is real course code of realistic length, with every identifier of one
cell renamed for some learners. Both ways compare every pair of the 200 learners (19,900 pairs):
(a) baseline: ``difflib.SequenceMatcher(...).ratio()`` on the answers' lines, what a quick
    script would do (and blind to renaming);
(b) ``aifkit.grading.similarity``: normalise, fingerprint each learner once, score each pair.
The script prints both times and the ratio (baseline / ours) measured in this one run.

Usage: python benchmarks/similarity.py [--learners N]
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

from aifkit.grading import similarity

REPO = Path(__file__).resolve().parents[1]


def course_cells() -> list[str]:
    """Every code cell of the course's solution notebooks, as text."""
    cells = []
    for path in sorted((REPO / "courses").glob("*/*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells += [source for _, source in similarity.code_cells(nb) if source.strip()]
    return cells


def learners(count: int, cells: list[str]) -> list[str]:
    """``count`` answers of 12 cells each; every third learner renames its identifiers."""
    rng = random.Random(0)
    answers = []
    for n in range(count):
        text = "\n\n".join(rng.sample(cells, 12))
        if n % 3 == 0:
            text = re.sub(r"\b([a-z_]\w*)\b", lambda m: m.group(1) + "_x", text)
        answers.append(text)
    return answers


def with_difflib(answers: list[str]) -> float:
    start = time.perf_counter()
    for a, b in itertools.combinations(answers, 2):
        difflib.SequenceMatcher(None, a.splitlines(), b.splitlines()).ratio()
    return time.perf_counter() - start


def with_fingerprints(answers: list[str]) -> float:
    start = time.perf_counter()
    prints = [Counter(d for d, _ in similarity.grams(text)) for text in answers]
    for a, b in itertools.combinations(prints, 2):
        similarity.weighted_jaccard(a, b)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=200)
    args = parser.parse_args()
    answers = learners(args.learners, course_cells())
    lines = sum(text.count("\n") + 1 for text in answers) / len(answers)
    pairs = args.learners * (args.learners - 1) // 2
    print(f"{args.learners} learners, {lines:.0f} lines of code each, {pairs} pairs")
    ours = with_fingerprints(answers)
    print(f"(b) fingerprints: {ours:.2f} s")
    baseline = with_difflib(answers)
    print(f"(a) difflib:      {baseline:.2f} s")
    print(f"ratio (a)/(b): {baseline / ours:.1f}x")


if __name__ == "__main__":
    main()
