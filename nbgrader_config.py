"""Stock nbgrader commands run from the repository root read the course configuration here."""

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file
load_subconfig("grading/nbgrader_config.py")  # noqa: F821
