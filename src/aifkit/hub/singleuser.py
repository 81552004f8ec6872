"""The single-user server learners get: jupyterhub-singleuser, minus a 2-3 s import.

jsonschema imports ``rfc3987_syntax`` when it is installed (an extra of jupyter-events), which
builds some 35 parsers on every start only to check the 'iri' string format that no Jupyter
schema uses. Skipping it halves the CPU a server start costs (6.3 s -> 3.3 s measured by
benchmarks/hub_load.py on 2 cores); jsonschema then leaves that one format unchecked.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from jupyterhub.singleuser import main  # noqa: E402 - after the import is blocked

if __name__ == "__main__":
    sys.exit(main())
