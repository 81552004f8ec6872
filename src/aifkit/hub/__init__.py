"""JupyterHub for the course: configuration as data, a pure apply, lint, and the local hub.

JupyterHub and the spawners are the ``[hub]`` extra (``pip install 'aifkit[hub]'``): the core
``aifkit`` command works without them, and ``require_jupyterhub`` says what to install.
"""

from __future__ import annotations

from aifkit.errors import AifkitError

INSTALL_HINT = "pip install 'aifkit[hub]'"


def require_jupyterhub() -> None:
    """Raise a clear error when JupyterHub (the ``[hub]`` extra) is not installed here."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        raise AifkitError(
            f"JupyterHub is not installed in this environment: {INSTALL_HINT} "
            "(the hub, its spawners and aifkit-singleuser are the [hub] extra)"
        ) from None
