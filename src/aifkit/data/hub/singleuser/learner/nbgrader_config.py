"""Learners' nbgrader: the course's exchange, and each learner filed under their own hub name."""

import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ.get("AIFKIT_COURSE_ID", "aifkit")
c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
c.Exchange.root = os.environ["AIFKIT_EXCHANGE"]
