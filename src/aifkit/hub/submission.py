"""nbgrader's submit, leaving the submission to its learner and the course's instructors only.

nbgrader makes each submission folder 0777 and its files 0644 ("hidden by the timestamp" and a
random suffix); anyone who learns the name can read it and add or delete files in it. Here the
learner's own server then makes it 0750/0640: the inbound folder's set-group-id bit gives it the
course's instructors group, so the hub (root) and the instructors collect it, no other learner.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbgrader.exchange.default.submit import ExchangeSubmit

from aifkit.hub.permissions import make_submission_private


class PrivateSubmit(ExchangeSubmit):  # type: ignore[misc]
    """``nbgrader submit`` whose submission other learners cannot read or change."""

    def copy_files(self) -> None:
        super().copy_files()
        make_submission_private(Path(os.path.join(self.inbound_path, self.assignment_filename)))
