"""Learners' nbgrader: the exchange, each learner filed under their own hub name, their courses.

On a hub of one course its id is the course (AIFKIT_COURSE_ID). On a hub of several courses
(AIFKIT_HUB_COURSES), nbgrader lists, fetches and submits only in the courses whose
``nbgrader-<id>`` hub group holds the learner (JupyterHubAuthPlugin reads the learner's groups
with the server's own token), and files each assignment under ``<course>/<assignment>``; a
learner of several courses has no single course id.
"""

import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ.get("AIFKIT_COURSE_ID", "aifkit")
c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
c.Exchange.root = os.environ["AIFKIT_EXCHANGE"]
if "," in os.environ.get("AIFKIT_HUB_COURSES", ""):
    c.Exchange.path_includes_course = True
    c.Authenticator.plugin_class = "nbgrader.auth.JupyterHubAuthPlugin"
# the submission readable by the learner and the course's instructors only (nbgrader: 0777)
c.ExchangeFactory.submit = "aifkit.hub.submission.PrivateSubmit"
