"""nbgrader configuration of the aifkit course (loaded by ../nbgrader_config.py).

Stock nbgrader commands run from the repository root and `aifkit grade ...` read this file.
Environment variables move the course without editing it:
  AIFKIT_COURSE_ID      course id, also the JupyterHub service name     (default: aifkit)
  AIFKIT_GRADEBOOK_URL  SQLAlchemy URL of the gradebook (postgresql://...) (default: SQLite in the root)
  AIFKIT_EXCHANGE       nbgrader exchange root                          (default: /srv/nbgrader/exchange)
"""

import os
from pathlib import Path

from aifkit.grading.config import configure
from aifkit.grading.stock_intake import exclude_unsafe_submissions

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

ROOT = Path(__file__).resolve().parents[1]
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "courses"
c.CourseDirectory.course_id = os.environ.get("AIFKIT_COURSE_ID", "aifkit")
if os.environ.get("AIFKIT_GRADEBOOK_URL"):
    c.CourseDirectory.db_url = os.environ["AIFKIT_GRADEBOOK_URL"]
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]
c.Exchange.root = os.environ.get("AIFKIT_EXCHANGE", "/srv/nbgrader/exchange")
# Grading limits (memory, CPU, processes, cell and notebook timeouts, output): defaults and help in
# src/aifkit/grading/limits.py; set one for this course here, e.g.
# c.SandboxedExecute.cell_timeout = 300
configure(c)
# Before nbgrader copies a byte: submissions holding symbolic links, special files or hard links,
# or notebooks past the intake limits, are excluded (each file named on stderr).
exclude_unsafe_submissions(c)
