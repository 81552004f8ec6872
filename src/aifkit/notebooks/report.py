"""Validation reports: JSON for machines, JUnit XML for CI, a table for people."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from aifkit.notebooks.validate import Outcome

_COLUMNS = ("status", "seconds", "tier", "notebook", "reason")


def summary(outcomes: Sequence[Outcome]) -> str:
    """One line: how many passed, were cached and failed, and the total seconds."""
    counts = {
        status: sum(o.status == status for o in outcomes)
        for status in ("passed", "cached", "failed")
    }
    seconds = sum(o.seconds for o in outcomes)
    return (
        f"{len(outcomes)} notebook(s): {counts['passed']} passed, {counts['cached']} cached, "
        f"{counts['failed']} failed, {seconds:.1f} s of execution"
    )


def _reason(outcome: Outcome) -> str:
    if not outcome.reason:
        return ""
    where = "" if outcome.cell is None else f"cell {outcome.cell}"
    if where and outcome.cell_source:
        where += f" `{outcome.cell_source[:40]}`"
    return f"{outcome.kind}: {outcome.reason}" + (f" [{where}]" if where else "")


def table(outcomes: Sequence[Outcome]) -> str:
    """A plain-text table, failures followed by their traceback excerpts."""
    rows = [
        (o.status.upper(), f"{o.seconds:.1f}", o.tier, o.notebook, _reason(o)) for o in outcomes
    ]
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(_COLUMNS)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    measured = [(o.notebook, name, value) for o in outcomes for name, value in o.figures.items()]
    if measured:
        lines += ["", "figures the notebooks measured:"]
        lines += [f"  {notebook}  {name}={value}" for notebook, name, value in measured]
    for outcome in outcomes:
        if outcome.traceback:
            lines += ["", f"--- {outcome.notebook} ({outcome.kind})", outcome.traceback]
    lines += ["", summary(outcomes)]
    return "\n".join(lines)


def junit(outcomes: Sequence[Outcome]) -> str:
    """JUnit XML: one testcase per notebook, failures with the reason and traceback excerpt."""
    suite = ET.Element(
        "testsuite",
        name="aifkit-validate",
        tests=str(len(outcomes)),
        failures=str(sum(not o.ok for o in outcomes)),
        skipped=str(sum(o.status == "cached" for o in outcomes)),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    for outcome in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"validate.{outcome.tier}",
            name=outcome.notebook,
            time=f"{outcome.seconds:.3f}",
        )
        if outcome.status == "cached":
            ET.SubElement(case, "skipped", message=outcome.reason)
        elif not outcome.ok:
            failure = ET.SubElement(case, "failure", message=_reason(outcome), type=outcome.kind)
            failure.text = outcome.traceback
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write(outcomes: Sequence[Outcome], report_dir: Path) -> dict[str, Path]:
    """Write report.json, junit.xml and report.txt into ``report_dir``; return their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": report_dir / "report.json",
        "junit": report_dir / "junit.xml",
        "table": report_dir / "report.txt",
    }
    payload = {"summary": summary(outcomes), "notebooks": [asdict(o) for o in outcomes]}
    paths["json"].write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    paths["junit"].write_text(junit(outcomes) + "\n", encoding="utf-8")
    paths["table"].write_text(table(outcomes) + "\n", encoding="utf-8")
    return paths
