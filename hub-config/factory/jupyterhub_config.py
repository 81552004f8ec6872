"""The factory hub: SLURM spawner, OIDC, PostgreSQL, HTTPS; settings from config.yml via aifkit.hub.apply.

AIFKIT_HUB_CONFIG points at another YAML file (tests use it); `aifkit hub check` lints the result.
"""

import os
from pathlib import Path

from aifkit.hub import apply, schema, secrets

config = schema.load(
    Path(os.environ.get("AIFKIT_HUB_CONFIG", Path(__file__).with_name("config.yml")))
)
apply.apply(config, get_config(), secrets.load(config))  # noqa: F821 - given by JupyterHub
