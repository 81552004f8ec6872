"""Instructors' nbgrader: the course root's own nbgrader_config.py adds the grading settings.

An instructor of several courses grades each in its formgrader service (``/services/<id>/``);
their own server works on the first of their courses (AIFKIT_COURSES).
"""

import os

c = get_config()  # noqa: F821
courses = [name for name in os.environ.get("AIFKIT_COURSES", "").split(",") if name]
c.CourseDirectory.course_id = os.environ.get("AIFKIT_COURSE_ID") or (courses or ["aifkit"])[0]
c.Exchange.root = os.environ["AIFKIT_EXCHANGE"]
# on an isolated hub: a submission counts only if its student's own account made it
c.ExchangeFactory.collect = "aifkit.hub.submission.OwnerCheckedCollect"
