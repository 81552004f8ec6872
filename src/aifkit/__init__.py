"""aifkit: the training and onboarding kit of a European AI Factory."""

import sys

__version__ = "0.1.0"

# jsonschema (imported by nbformat, nbgrader, jupyter-events) imports rfc3987_syntax when it is
# installed (an extra of jupyter-events), which compiles some 35 Earley parsers on every start:
# 1-3 CPU-s per process, only to check the 'iri' string format that no notebook or Jupyter schema
# uses (python-jsonschema/jsonschema#1428). Every aifkit process (CLI, grader, its workers and
# forkservers, runners, the single-user server, kernels) skips it here, before anything imports
# jsonschema; jsonschema then leaves that one format unchecked.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
