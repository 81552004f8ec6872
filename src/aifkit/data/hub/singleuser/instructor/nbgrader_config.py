"""Instructors' nbgrader: the course root's own nbgrader_config.py adds the grading settings."""

import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ.get("AIFKIT_COURSE_ID", "aifkit")
c.Exchange.root = os.environ["AIFKIT_EXCHANGE"]
