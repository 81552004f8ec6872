"""The single-user server learners get: jupyterhub-singleuser, minus a 2-3 s import.

Importing aifkit first keeps jsonschema's slow optional ``rfc3987_syntax`` out (see
``aifkit/__init__.py``), which halves the CPU a server start costs (6.3 s -> 3.3 s measured by
benchmarks/hub_load.py on 2 cores).

The ``aifkit-singleuser`` script is installed with aifkit but needs the ``[hub]`` extra; without
JupyterHub it says what to install instead of failing on an import.
"""

import sys


def main() -> int | None:
    """Run jupyterhub-singleuser (its command line) with the slow import blocked."""
    try:
        from jupyterhub.singleuser import main as singleuser_main
    except ImportError as error:
        from aifkit.hub import INSTALL_HINT

        print(f"aifkit-singleuser needs JupyterHub ({error}): {INSTALL_HINT}", file=sys.stderr)
        return 2
    result: int | None = singleuser_main()
    return result


if __name__ == "__main__":
    sys.exit(main())
