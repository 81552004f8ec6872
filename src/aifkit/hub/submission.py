"""nbgrader's submit and collect on an isolated hub: submissions private, and really theirs.

Submit: nbgrader makes each submission folder 0777 and its files 0644 ("hidden by the timestamp"
and a random suffix); anyone who learns the name can read it and add or delete files in it. Here
the learner's own server then makes it 0750/0640: the inbound folder's set-group-id bit gives it
the course's instructors group, so the hub (root) and the instructors collect it, no other learner.

Collect: the student is read from the folder's name, which any learner can write into inbound
(``learner2+a1+<a later time>+x`` would replace learner2's work); nbgrader only warns. With
``AIFKIT_ACCOUNT_PREFIX`` set (the formgrader of an isolated hub), a folder not owned by the
account of the student it names is set aside (renamed ``.forged-<name>``) before collecting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit

from aifkit.hub.accounts import user_name
from aifkit.hub.permissions import make_submission_private


class PrivateSubmit(ExchangeSubmit):  # type: ignore[misc]
    """``nbgrader submit`` whose submission other learners cannot read or change."""

    def copy_files(self) -> None:
        super().copy_files()
        make_submission_private(Path(os.path.join(self.inbound_path, self.assignment_filename)))


ACCOUNT_PREFIX_ENV = "AIFKIT_ACCOUNT_PREFIX"
SET_ASIDE = ".forged-"


def set_aside_forged(inbound: Path, prefix: str, log: Any) -> list[Path]:
    """Rename every submission whose owner is not ``prefix + <its student>``; what was moved."""
    moved = []
    for entry in sorted(inbound.iterdir()):
        if entry.name.startswith("."):
            continue
        student = entry.name.split("+", 1)[0]
        owner = user_name(entry.lstat().st_uid)
        if owner != prefix + student:
            target = inbound / (SET_ASIDE + entry.name)
            entry.rename(target)
            moved.append(target)
            log.error(
                "%s names the student %s but was made by %s, not %s%s: set aside as %s",
                entry.name, student, owner, prefix, student, target.name,
            )  # fmt: skip
    return moved


class OwnerCheckedCollect(ExchangeCollect):  # type: ignore[misc]
    """``nbgrader collect`` that takes only submissions made by their student's own account."""

    def init_src(self) -> None:
        prefix = os.environ.get(ACCOUNT_PREFIX_ENV, "")
        if prefix:
            set_aside_forged(
                Path(self.root) / self.coursedir.course_id / "inbound", prefix, self.log
            )
        super().init_src()
