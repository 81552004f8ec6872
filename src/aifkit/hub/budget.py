"""GPU budgets on the spawn page: what a profile would cost, what the learner has left.

A spawn profile's job may charge at most its GPUs x its time limit in GPU-minutes; SLURM
starts it only while that fits the learner's GPU-minute limits (``GrpTRESMins`` of their
association, account and QOS; ``aifkit.course.accounting.budget``). ``refusal`` says, before
anything is submitted, why a spawn would not fit; ``form_note`` is what the profile form shows.
Without accounting on the cluster there is no budget, and nothing is refused here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from aifkit import slurm
from aifkit.course import accounting
from aifkit.course.site import time_to_minutes


@dataclass(frozen=True)
class SpawnCost:
    """What one profile's job may charge: its GPUs for its whole time limit."""

    profile: str
    gpus: int
    minutes: int

    @property
    def gpu_minutes(self) -> int:
        return self.gpus * self.minutes


def cost(profile: str, gpus: int, time_limit: str) -> SpawnCost:
    """The cost of a profile with ``gpus`` GPUs and a SLURM ``time_limit`` ("02:00:00")."""
    return SpawnCost(profile, gpus, time_to_minutes(time_limit) if time_limit else 0)


def learner_budget(
    user: str, *, account: str = "", qos: str = "", timeout_s: float = slurm.QUERY_TIMEOUT_S
) -> accounting.Budget | None:
    """The user's GPU-minute limits, or None when the cluster keeps no accounting.

    Raises ``AccountingError`` when accounting is on but SLURM cannot say (no association...).
    """
    if not accounting.enabled(timeout_s=timeout_s):
        return None
    return accounting.budget(
        user=user, account=account or None, qos=qos or None, timeout_s=timeout_s
    )


def refusal(spawn: SpawnCost, budget: accounting.Budget | None) -> str:
    """Why the spawn does not fit the budget, for the learner; "" when it fits."""
    left = budget.remaining_min if budget is not None else None
    if budget is None or left is None or spawn.gpu_minutes <= left:
        return ""
    return (
        f"Profile {spawn.profile} would use up to {spawn.gpu_minutes} GPU-minutes "
        f"({spawn.gpus} GPU x {spawn.minutes} min) but you have {budget.describe()}, "
        "so nothing was submitted. Pick a profile with fewer GPUs or a shorter time, "
        "or ask your instructor for more GPU time."
    )


def form_note(entries: list[tuple[SpawnCost, accounting.Budget | None]]) -> str:
    """An HTML note for the profile form: each budget left, and what each GPU profile costs."""
    budgets = dict.fromkeys(
        b.describe() for _, b in entries if b is not None and b.remaining_min is not None
    )
    if not budgets:
        return ""
    items = "".join(
        f"<li>{html.escape(c.profile)}: up to {c.gpu_minutes} GPU-minutes"
        f"{' (over your budget)' if refusal(c, b) else ''}</li>"
        for c, b in entries
        if c.gpus
    )
    lines = "".join(f"<p>GPU budget: {html.escape(text)}</p>" for text in budgets)
    return f'<div class="aifkit-budget">{lines}' + (f"<ul>{items}</ul>" if items else "") + "</div>"


__all__ = ["SpawnCost", "cost", "form_note", "learner_budget", "refusal"]
